package sinks_test

// End-to-end tests of the Prometheus export: a real Prometheus (built from
// its Go module, internal/prombin) in the client's namespace discovers
// `bridge respond` servers through the bridge's http_sd endpoint, its
// file_sd file and the Consul sink's catalog, with the scrape configs of the
// docs/sinks/prometheus.md as they are written there (only addresses,
// paths and refresh intervals replaced); a bridge restart leaves its target
// list alone (the endpoint answers 503 until a round completes); the
// rules file loads and evaluates, and every query of the dashboard names
// only metrics a running bridge exposes and runs on Prometheus.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/harness"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/prombin"
)

// promAddr is where Prometheus listens inside the client namespace.
const promAddr = "127.0.0.1:9090"

// promPage is the documentation page that holds the scrape configs.
const promPage = "docs/sinks/prometheus.md"

// docsScrapeConfig returns the scrape config of promPage's example block
// marked `<!-- prometheus-example: name -->`.
func docsScrapeConfig(t *testing.T, name string) map[string]any {
	t.Helper()
	block := docsBlock(t, promPage, "prometheus-example", name, "yaml")
	var doc struct {
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict([]byte(block), &doc); err != nil {
		t.Fatalf("%s example %q: %v", promPage, name, err)
	}
	if len(doc.ScrapeConfigs) != 1 {
		t.Fatalf("%s example %q has %d scrape configs, want 1", promPage, name, len(doc.ScrapeConfigs))
	}
	return doc.ScrapeConfigs[0]
}

// sdConfig returns the only entry of sc's service discovery list key.
func sdConfig(t *testing.T, sc map[string]any, key string) map[string]any {
	t.Helper()
	l, ok := sc[key].([]any)
	if !ok || len(l) != 1 {
		t.Fatalf("scrape config %v: want one %s entry", sc["job_name"], key)
	}
	return l[0].(map[string]any)
}

// prom is a Prometheus server running in a namespace.
type prom struct {
	*netns.Proc
	ns string
}

// startPrometheus runs Prometheus on h with scrape configs scs, every
// interval 1 s, and the rules files rules; it returns once Prometheus is
// ready.
func startPrometheus(t *testing.T, h *netns.Host, rules []string, scs ...map[string]any) *prom {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "scrape_timeout": "500ms", "evaluation_interval": "1s"},
		"rule_files":     rules,
		"scrape_configs": scs,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(t.Context(), prombin.Prometheus(t), "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	pr := &prom{Proc: p, ns: h.NS}
	t.Cleanup(func() {
		if t.Failed() {
			_, stderr := p.Output()
			t.Logf("prometheus (exit %d) config:\n%s\nstderr:\n%s", p.ExitCode(), b, harness.Tail(stderr, 60))
		}
	})
	harness.Wait(t, 30*time.Second, "prometheus ready", func() (bool, string) {
		code, body, err := harness.NSGet(h.NS, "http://"+promAddr+"/-/ready")
		return err == nil && code == http.StatusOK, fmt.Sprint(code, body, err)
	})
	return pr
}

// api GETs a Prometheus API path and decodes its data into v.
func (p *prom) api(path string, v any) error {
	code, body, err := harness.NSGet(p.ns, "http://"+promAddr+path)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return fmt.Errorf("GET %s: %d %q: %w", path, code, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s: %d %s: %s", path, code, r.Status, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// promTarget is an active target of /api/v1/targets.
type promTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
}

// targets returns the active targets of job by instance.
func (p *prom) targets(job string) (map[string]map[string]string, error) {
	var d struct {
		ActiveTargets []promTarget `json:"activeTargets"`
	}
	if err := p.api("/api/v1/targets?state=active&scrapePool="+url.QueryEscape(job), &d); err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, tg := range d.ActiveTargets {
		if tg.ScrapePool == job {
			out[tg.Labels["instance"]] = tg.Labels
		}
	}
	return out, nil
}

// waitTargets waits until job's targets are exactly want, each with the
// labels of want's value.
func (p *prom) waitTargets(t *testing.T, job string, want map[string]map[string]string) {
	t.Helper()
	harness.Wait(t, 20*time.Second, job+" targets", func() (bool, string) {
		got, err := p.targets(job)
		if err != nil {
			return false, err.Error()
		}
		if len(got) != len(want) {
			return false, fmt.Sprint(got)
		}
		for inst, labels := range want {
			for k, v := range labels {
				if got[inst][k] != v {
					return false, fmt.Sprint(got)
				}
			}
		}
		return true, ""
	})
}

// promMetric returns the sum of Prometheus's own metric samples starting
// with prefix.
func (p *prom) promMetric(t *testing.T, prefix string) float64 {
	t.Helper()
	code, body, err := harness.NSGet(p.ns, "http://"+promAddr+"/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("prometheus /metrics: %d %v", code, err)
	}
	v, found, err := harness.MetricIn(body, prefix)
	if err != nil || !found {
		t.Fatalf("prometheus /metrics has no %s (%v)", prefix, err)
	}
	return v
}

// TestPrometheusSD: http_sd and file_sd with the documented scrape configs
// show the servers as targets with the relabelled labels; a bridge restart
// keeps them (503 until its first round completes, which Prometheus counts
// as a failed refresh and holds its targets through); the rules file loads
// and evaluates; the dashboard's queries name only metrics that exist and
// run.
func TestPrometheusSD(t *testing.T) {
	t.Parallel()
	start := time.Now()
	l := harness.NewRunLAN(t, 2, false)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12", "--app-port", "8001")
	dev := l.Client.Dev(l.Br)
	dir := t.TempDir()
	token := filepath.Join(dir, "sd-token")
	if err := os.WriteFile(token, []byte("e2e-sd-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sdFile := filepath.Join(dir, "django.json")
	bridgeArgs := []string{"--sink", "file", "--file-format", "prometheus", "--file-path", sdFile,
		"--prometheus-sd", "--prometheus-sd-token-file", token, "--metrics-addr", harness.MetricsAddr,
		"--bridge-id", "lab-bridge", "--whitelist", dev, "--log-format", "json"}
	b := harness.StartRun(t, l.Client, "sd", append(bridgeArgs, harness.Fast...)...)
	// A bridge in catalog mode with app checks, for the catalog's and the
	// app checks' metric names (its Consul is unreachable and nothing
	// serves on the servers' ports: the names are registered all the same).
	const catalogMetrics = "127.0.0.1:9109"
	harness.StartRun(t, l.Client, "catalog-metrics", append([]string{"--sink", "consul", "--consul-mode", "catalog", "--consul-addr", "127.0.0.1:1",
		"--metrics-addr", catalogMetrics, "--bridge-id", "catalog-metrics", "--whitelist", dev, "--app-check", "tcp", "--app-check-interval", "1s", "--app-check-timeout", "0.5"}, harness.Fast...)...)

	// And one with the Kubernetes sink, for its leader's metric names (its
	// API server does not exist either).
	const kubernetesMetrics = "127.0.0.1:9110"
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: \"https://127.0.0.1:1\"}}]\n" +
		"users: [{name: none, user: {token: none}}]\ncontexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]\ncurrent-context: none\n"
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	harness.StartRun(t, l.Client, "kubernetes-metrics", append([]string{"--sink", "kubernetes", "--kubeconfig", kubeconfig,
		"--metrics-addr", kubernetesMetrics, "--bridge-id", "kubernetes-metrics", "--whitelist", dev}, harness.Fast...)...)

	httpSD := docsScrapeConfig(t, "http_sd")
	httpSD["job_name"] = "django-http-sd"
	hs := sdConfig(t, httpSD, "http_sd_configs")
	if hs["url"] != "http://"+harness.MetricsAddr+"/sd/prometheus" {
		t.Fatalf("documented http_sd url %v, want the default metrics address", hs["url"])
	}
	hs["refresh_interval"] = "1s"
	hs["authorization"].(map[string]any)["credentials_file"] = token
	fileSD := docsScrapeConfig(t, "file_sd")
	fileSD["job_name"] = "django-file-sd"
	fs := sdConfig(t, fileSD, "file_sd_configs")
	fs["files"] = []string{sdFile}
	fs["refresh_interval"] = "1s"
	self := map[string]any{"job_name": "udp-discovery-bridge", "static_configs": []any{map[string]any{"targets": []string{harness.MetricsAddr, catalogMetrics, kubernetesMetrics}}}}
	rules := filepath.Join(harness.RepoRoot(t), "charts", "udp-discovery-bridge", "files", "prometheus-rules.yaml")
	p := startPrometheus(t, l.Client, []string{rules}, httpSD, fileSD, self)

	want := map[string]map[string]string{
		"10.213.1.11:8000": {"interface": dev, "segment": "10.213.1.0/24", "bridge": "lab-bridge"},
		"10.213.1.12:8001": {"interface": dev, "segment": "10.213.1.0/24", "bridge": "lab-bridge"},
	}
	p.waitTargets(t, "django-http-sd", want)
	fileWant := map[string]map[string]string{}
	for k, v := range want {
		fileWant[k] = map[string]string{"interface": v["interface"], "segment": v["segment"]}
	}
	p.waitTargets(t, "django-file-sd", fileWant)
	t.Logf("targets through http_sd and file_sd %s after start", time.Since(start).Round(time.Millisecond))
	if code, _, err := harness.NSGet(l.Client.NS, "http://"+harness.MetricsAddr+"/sd/prometheus"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/sd/prometheus without the token: %d %v, want 401", code, err)
	}

	// The rules load and evaluate without error.
	harness.Wait(t, 10*time.Second, "rules evaluated", func() (bool, string) {
		var d struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := p.api("/api/v1/rules", &d); err != nil {
			return false, err.Error()
		}
		ok := 0
		var detail []string
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				if r.Health == "ok" {
					ok++
				}
				detail = append(detail, r.Name+":"+r.Health+" "+r.LastError)
			}
		}
		return ok == alertRules(t, rules), strings.Join(detail, "; ")
	})

	checkDashboard(t, p, l.Client.NS, harness.MetricsAddr, catalogMetrics, kubernetesMetrics)

	// Restart the bridge with a first round that takes 3 s: /sd/prometheus
	// answers 503 meanwhile, and Prometheus keeps both targets.
	if code := b.Sigterm(t, 5*time.Second); code != 0 {
		t.Fatalf("bridge exit %d on SIGTERM", code)
	}
	restarted := time.Now()
	b = harness.StartRun(t, l.Client, "sd-restarted", append(bridgeArgs, "--interval", "4s", "--timeout", "3")...)
	harness.Wait(t, 5*time.Second, "503 from the restarted bridge", func() (bool, string) {
		code, body, err := runNSGetToken(l.Client.NS, "http://"+harness.MetricsAddr+"/sd/prometheus", "e2e-sd-token")
		return err == nil && code == http.StatusServiceUnavailable, fmt.Sprint(code, body, err)
	})
	failures := p.promMetric(t, "prometheus_sd_http_failures_total")
	held := 0
	harness.Wait(t, 10*time.Second, "the restarted bridge's first round", func() (bool, string) {
		got, err := p.targets("django-http-sd")
		if err != nil {
			return false, err.Error()
		}
		if len(got) != 2 {
			t.Fatalf("%s after the restart: Prometheus has %d http_sd targets, want the 2 it had: %v", time.Since(restarted).Round(time.Millisecond), len(got), got)
		}
		if p.promMetric(t, "prometheus_sd_http_failures_total") > failures {
			held++ // a refresh got the 503 and the targets stayed
		}
		code, _, err := runNSGetToken(l.Client.NS, "http://"+harness.MetricsAddr+"/sd/prometheus", "e2e-sd-token")
		return err == nil && code == http.StatusOK, fmt.Sprint(code, err)
	})
	if held == 0 {
		t.Errorf("no http_sd refresh of Prometheus failed while the restarted bridge answered 503: the test proved nothing")
	}
	p.waitTargets(t, "django-http-sd", want)
	t.Logf("restart: the targets held through %d checks after a failed refresh; whole test %s", held, time.Since(start).Round(time.Millisecond))
}

// runNSGetToken GETs url from inside ns with a bearer token.
func runNSGetToken(ns, u, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := harness.NSClient(ns).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = fmt.Fprint(&b, resp.Status)
	return resp.StatusCode, b.String(), err
}

// bridgeMetric matches the bridge's metric names in a query.
var bridgeMetric = regexp.MustCompile(`\budp_discovery_bridge_[a-z0-9_]+`)

// checkDashboard checks every query of the dashboard: each metric name it
// uses is a sample name of a running bridge's /metrics (at metricsAddrs,
// in ns), and it runs on Prometheus with the dashboard's variables set to
// match everything.
func checkDashboard(t *testing.T, p *prom, ns string, metricsAddrs ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "charts", "udp-discovery-bridge", "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	var bodies strings.Builder
	for _, addr := range metricsAddrs {
		code, body, err := harness.NSGet(ns, "http://"+addr+"/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s/metrics: %d %v", addr, code, err)
		}
		bodies.WriteString(body)
	}
	exposed := map[string]bool{}
	for line := range strings.Lines(bodies.String()) {
		if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			name, _, _ = strings.Cut(name, "{")
			exposed[name] = true
		}
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", ".+", "$instance", ".+")
	var names []string
	for _, panel := range d.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, tg := range panel.Targets {
			for _, n := range bridgeMetric.FindAllString(tg.Expr, -1) {
				if !exposed[n] {
					t.Errorf("panel %q: %s is not in a running bridge's /metrics (query %s)", panel.Title, n, tg.Expr)
				}
				names = append(names, n)
			}
			var res any
			if err := p.api("/api/v1/query?query="+url.QueryEscape(vars.Replace(tg.Expr)), &res); err != nil {
				t.Errorf("panel %q: query %s: %v", panel.Title, tg.Expr, err)
			}
		}
	}
	slices.Sort(names)
	t.Logf("dashboard: %d panels, metrics %v all exposed and every query runs", len(d.Panels), slices.Compact(names))
}

// TestPrometheusConsulSD: the documented consul_sd_configs example on the
// Consul sink (agent mode) finds every server with the bridge's service
// meta relabelled into labels, and its keep-passing rule drops them when
// their bridge dies (its TTL expires: the servers' alias checks turn
// critical).
func TestPrometheusConsulSD(t *testing.T) {
	t.Parallel()
	start := time.Now()
	l := harness.NewRunLAN(t, 2, true)
	harness.Respond(t, l.Servers[0], 1, "--ip", "10.213.1.11")
	harness.Respond(t, l.Servers[1], 1, "--ip", "10.213.1.12", "--app-port", "8001")
	dev := l.Client.Dev(l.Br)
	b := harness.StartRun(t, l.Client, "consul-sd", harness.ConsulRunArgs("consul-sd-bridge", "--whitelist", dev, "--metrics-addr", "", "--consul-ttl", "2s")...)

	sc := docsScrapeConfig(t, "consul_sd")
	cs := sdConfig(t, sc, "consul_sd_configs")
	cs["server"] = harness.ConsulAddr
	cs["refresh_interval"] = "1s"
	p := startPrometheus(t, l.Client, nil, sc)
	labels := map[string]string{"bridge": "consul-sd-bridge", "interface": dev, "job": "django"}
	p.waitTargets(t, "django", map[string]map[string]string{"10.213.1.11:8000": labels, "10.213.1.12:8001": labels})
	t.Logf("targets through consul_sd %s after start", time.Since(start).Round(time.Millisecond))

	b.Kill9(t)
	killed := time.Now()
	p.waitTargets(t, "django", map[string]map[string]string{})
	t.Logf("targets dropped %s after the bridge's kill -9 (critical checks); whole test %s",
		time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// alertRules counts the alerts of the rules file at path.
func alertRules(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "- alert: ")
}

// docsBlock returns the text of page's fenced block (of language lang)
// that follows the marker `<!-- <marker>: <name> -->`: the docs' examples
// the tests run as written.
func docsBlock(t *testing.T, page, marker, name, lang string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), page))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + ": " + regexp.QuoteMeta(name) + " -->\n```" + regexp.QuoteMeta(lang) + "\n(.*?)```")
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no %s %q block", page, marker, name)
	}
	return string(m[1])
}
