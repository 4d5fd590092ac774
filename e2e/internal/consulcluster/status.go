package consulcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Leader asks every running server for the raft leader (/v1/status/leader)
// and returns the leader's index when they all name the same running
// server. It does not wait; WaitLeader does.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	var views []string
	leader := ""
	agree, asked := true, 0
	for i, s := range c.Servers {
		if !c.Running(i) {
			continue
		}
		asked++
		addr, err := c.statusLeader(ctx, s)
		switch {
		case err != nil:
			views = append(views, fmt.Sprintf("%s: %v", s.Name, err))
			agree = false
			continue
		case addr == "":
			views = append(views, s.Name+": no leader")
			agree = false
			continue
		}
		views = append(views, fmt.Sprintf("%s: leader %s", s.Name, c.nameOf(addr)))
		if leader == "" {
			leader = addr
		} else if addr != leader {
			agree = false
		}
	}
	if asked == 0 {
		return -1, errors.New("no server running")
	}
	idx := slices.IndexFunc(c.Servers, func(s *Server) bool { return s.RPCAddr == leader })
	switch {
	case !agree:
		return -1, fmt.Errorf("servers disagree or have no leader (%s)", strings.Join(views, "; "))
	case idx < 0:
		return -1, fmt.Errorf("leader %s is not a server of this cluster (%s)", leader, strings.Join(views, "; "))
	case !c.Running(idx):
		return -1, fmt.Errorf("leader %s is not running (%s)", c.Servers[idx].Name, strings.Join(views, "; "))
	}
	return idx, nil
}

// WaitLeader polls Leader every 50 ms until it succeeds or ctx ends; after
// a Kill of the leader it returns the newly elected one.
func (c *Cluster) WaitLeader(ctx context.Context) (int, error) {
	for {
		i, err := c.Leader(ctx)
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReady waits until the running servers agree on a running leader and,
// per the leader, every running server is a voter in the raft
// configuration and healthy in autopilot's view. Killed or stopped servers
// are not required. The error names what was missing last.
func (c *Cluster) WaitReady(ctx context.Context) error {
	var last error
	for {
		if last = c.ready(ctx); last == nil {
			return nil
		}
		for _, s := range c.Servers {
			select {
			case <-s.exited():
				return fmt.Errorf("server %s exited (see its log %s)", s.Name, s.LogPath)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exited is closed when the server's current process has exited (never, if
// it is not running).
func (s *Server) exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return nil
	}
	return s.done
}

func (c *Cluster) ready(ctx context.Context) error {
	li, err := c.Leader(ctx)
	if err != nil {
		return fmt.Errorf("no raft leader: %v", err)
	}
	cl, err := api.NewClient(c.APIConfig(li))
	if err != nil {
		return err
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	rc, err := cl.Operator().RaftGetConfiguration(q)
	if err != nil {
		return fmt.Errorf("raft configuration from leader %s: %v", c.Servers[li].Name, err)
	}
	health, err := cl.Operator().AutopilotServerHealth(q)
	if err != nil {
		return fmt.Errorf("autopilot health from leader %s: %v", c.Servers[li].Name, err)
	}
	var missing []string
	for i, s := range c.Servers {
		if !c.Running(i) {
			continue
		}
		k := slices.IndexFunc(rc.Servers, func(r *api.RaftServer) bool { return r.Node == s.Name })
		if k < 0 {
			missing = append(missing, s.Name+" not in the raft configuration")
			continue
		}
		if !rc.Servers[k].Voter {
			missing = append(missing, s.Name+" not a voter")
			continue
		}
		h := slices.IndexFunc(health.Servers, func(h api.ServerHealth) bool { return h.Name == s.Name })
		if h < 0 || !health.Servers[h].Healthy {
			missing = append(missing, s.Name+" not healthy per autopilot")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("leader %s: %s", c.Servers[li].Name, strings.Join(missing, "; "))
	}
	if c.opts.ACLManagementToken != "" {
		// The leader bootstraps ACLs (creates the management token) after
		// its election; until then the token is "ACL not found".
		if _, _, err := cl.ACL().TokenReadSelf(q); err != nil {
			return fmt.Errorf("ACLs not bootstrapped on leader %s: %v", c.Servers[li].Name, err)
		}
	}
	return nil
}

// RaftServers returns the raft configuration as server i sees it (node
// name → voter).
func (c *Cluster) RaftServers(ctx context.Context, i int) (map[string]bool, error) {
	cl, err := api.NewClient(c.APIConfig(i))
	if err != nil {
		return nil, err
	}
	rc, err := cl.Operator().RaftGetConfiguration((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rc.Servers {
		out[r.Node] = r.Voter
	}
	return out, nil
}

// statusLeader returns server s's view of the leader's RPC address ("" when
// it knows none).
func (c *Cluster) statusLeader(ctx context.Context, s *Server) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HTTPAddr+"/v1/status/leader", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return strings.Trim(strings.TrimSpace(string(b)), `"`), nil
}

// nameOf maps a server RPC address to its name for messages.
func (c *Cluster) nameOf(rpcAddr string) string {
	for _, s := range c.Servers {
		if s.RPCAddr == rpcAddr {
			return s.Name
		}
	}
	return rpcAddr
}
