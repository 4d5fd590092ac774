package harness

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// NSClient returns an HTTP client whose connections are made inside the
// named network namespace (for the bridge's metrics endpoint).
func NSClient(ns string) *http.Client { return netns.HTTPClient(ns, 3*time.Second) }

// NSGet GETs url from inside ns and returns the status code and body.
func NSGet(ns, url string) (int, string, error) {
	resp, err := NSClient(ns).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metric GETs /metrics inside ns and returns the sum of the samples
// whose line starts with prefix (see MetricIn).
func Metric(ns, prefix string) (float64, bool, error) {
	body, err := MetricsBody(ns)
	if err != nil {
		return 0, false, err
	}
	return MetricIn(body, prefix)
}

// MetricsBody GETs /metrics inside ns.
func MetricsBody(ns string) (string, error) {
	code, body, err := NSGet(ns, "http://"+MetricsAddr+"/metrics")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %d", code)
	}
	return body, nil
}

// MetricIn returns the sum of the samples in a /metrics body whose line
// starts with prefix: a metric name with an optional full label set, e.g.
// `udp_discovery_bridge_sink_writes_total{sink="consul"}`.
func MetricIn(body, prefix string) (float64, bool, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
		found = true
	}
	return sum, found, nil
}
