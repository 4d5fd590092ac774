package k8slab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// apiServerName is the apiserver's process name in the lab.
const apiServerName = "kube-apiserver"

// StopAPIServer stops the apiserver as an outage would (SIGKILL: no
// graceful drain; etcd keeps the state). StartAPIServer starts it again.
// Every other component keeps running and retries, as in a real outage.
func (c *Cluster) StopAPIServer() {
	c.proc(apiServerName).kill()
}

// StartAPIServer starts the apiserver stopped by StopAPIServer again, with
// the same flags (its log so far kept as kube-apiserver.log.<n>), and
// waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	p := c.proc(apiServerName)
	if p == nil {
		return fmt.Errorf("the lab has no %s", apiServerName)
	}
	select {
	case <-p.done:
	default:
		return fmt.Errorf("%s is running", apiServerName)
	}
	c.mu.Lock()
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			break
		}
	}
	if c.restarts == nil {
		c.restarts = map[string]int{}
	}
	c.restarts[apiServerName]++
	n := c.restarts[apiServerName]
	c.mu.Unlock()
	_ = os.Rename(p.log, p.log+"."+strconv.Itoa(n))
	if err := c.runIn(p.host, p.name, p.bin, p.args...); err != nil {
		return err
	}
	return c.waitFor(ctx, "kube-apiserver ready again", func() error { return httpOK(c.api, c.apiURL+"/readyz") })
}

// APIGet sends GET path to the apiserver as the lab's admin and returns
// the body of a 200 answer; anything else is an error.
func (c *Cluster) APIGet(ctx context.Context, path string) ([]byte, error) {
	return c.APISend(ctx, http.MethodGet, path, "", nil)
}

// APISend sends method path with body (of contentType) as the lab's admin
// and returns the answer's body; a non-2xx answer is an error carrying it.
func (c *Cluster) APISend(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.apiURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.api.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

// PodLogsDir is where node's kubelet writes its containers' logs
// (<namespace>_<pod>_<uid>/<container>/<restart>.log); the kubelet
// removes a pod's directory once the pod is gone.
func (n *Node) PodLogsDir() string { return filepath.Join(n.dir, "pod-logs") }
