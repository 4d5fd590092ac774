package consulcluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulbin"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// maxElection bounds the time from killing the leader to the survivors
// agreeing on a new one. With raft_multiplier = 1 it is typically 1-3 s.
const maxElection = 10 * time.Second

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestClusterSurvivesLeaderKill starts three servers, writes a key, kills
// the raft leader, measures the election of a new one, reads the key through
// a survivor and brings the killed server back as a voter. A fourth
// namespace on the bridge reads the key with the consul CLI, showing the
// servers are reachable from other hosts of the lab.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	lab := netns.New(t)
	br := lab.Bridge("ccl")
	cl := consulcluster.Start(t, lab, br, consulcluster.Options{Subnet: "10.213.61.0/24"})
	ctx := ctxFor(t, 2*time.Minute)

	li, err := cl.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader is %s", cl.Servers[li].Name)
	follower := (li + 1) % cl.N()
	if _, err := cl.Client(li).KV().Put(&api.KVPair{Key: "e2e/cluster", Value: []byte("v1")}, nil); err != nil {
		t.Fatalf("put through leader: %v", err)
	}

	// Another namespace on the same bridge, through a follower.
	app := lab.Host("app", br, "10.213.61.50/24")
	r := app.Run(ctx, consulbin.Path(t), "kv", "get", "-http-addr=http://"+cl.HTTPAddr(follower), "e2e/cluster")
	if r.Err != nil || strings.TrimSpace(r.Stdout) != "v1" {
		t.Fatalf("consul kv get from %s via %s: %v stdout %q stderr %q", app.NS, cl.HTTPAddr(follower), r.Err, r.Stdout, r.Stderr)
	}

	killed := li
	start := time.Now()
	cl.Kill(killed)
	wctx, cancel := context.WithTimeout(ctx, maxElection)
	nl, err := cl.WaitLeader(wctx)
	cancel()
	election := time.Since(start)
	if err != nil {
		t.Fatalf("no new leader within %s of killing %s: %v", maxElection, cl.Servers[killed].Name, err)
	}
	t.Logf("killed leader %s; %s elected after %s", cl.Servers[killed].Name, cl.Servers[nl].Name, election.Round(time.Millisecond))

	for i := range cl.N() {
		if i == killed {
			continue
		}
		kv, _, err := cl.Client(i).KV().Get("e2e/cluster", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		if err != nil || kv == nil || string(kv.Value) != "v1" {
			t.Fatalf("consistent read through survivor %s: %v %+v", cl.Servers[i].Name, err, kv)
		}
	}
	if _, err := cl.Client(nl).KV().Put(&api.KVPair{Key: "e2e/cluster", Value: []byte("v2")}, nil); err != nil {
		t.Fatalf("put with two of three servers: %v", err)
	}

	start = time.Now()
	cl.Start(killed)
	t.Logf("%s restarted and a healthy voter again after %s", cl.Servers[killed].Name, time.Since(start).Round(time.Millisecond))
	voters, err := cl.RaftServers(ctx, killed)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cl.Servers {
		if !voters[s.Name] {
			t.Errorf("raft configuration seen by %s: %s is not a voter (%v)", cl.Servers[killed].Name, s.Name, voters)
		}
	}
	kv, _, err := cl.Client(killed).KV().Get("e2e/cluster", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || kv == nil || string(kv.Value) != "v2" {
		t.Fatalf("read through the rejoined %s: %v %+v", cl.Servers[killed].Name, err, kv)
	}

	// Stop (SIGTERM, no leave) a follower and start it again.
	li, err = cl.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := (li + 1) % cl.N()
	cl.Stop(f)
	if cl.Running(f) {
		t.Fatalf("%s still running after Stop", cl.Servers[f].Name)
	}
	if voters, err := cl.RaftServers(ctx, li); err != nil || !voters[cl.Servers[f].Name] {
		t.Fatalf("%s should still be a voter right after a stop without leave: %v %v", cl.Servers[f].Name, voters, err)
	}
	start = time.Now()
	cl.Start(f)
	t.Logf("%s stopped and restarted, a healthy voter again after %s", cl.Servers[f].Name, time.Since(start).Round(time.Millisecond))
}

// TestClusterSessionSurvivesServerKill checks the design fact catalog mode
// relies on: a session created with CreateNoChecks on a synthetic catalog
// node survives the death (and autopilot's removal) of the server it was
// created through, as long as it is renewed through another server. A
// control session created through the same server without a Node belongs to
// that server's own node and must die when autopilot removes the server.
func TestClusterSessionSurvivesServerKill(t *testing.T) {
	lab := netns.New(t)
	br := lab.Bridge("ccs")
	cl := consulcluster.Start(t, lab, br, consulcluster.Options{Subnet: "10.213.62.0/24"})
	ctx := ctxFor(t, 3*time.Minute)

	li, err := cl.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Created through the leader, so its death also forces an election.
	creator, renewer := li, (li+1)%cl.N()
	cname := cl.Servers[creator].Name
	cc, rc := cl.Client(creator), cl.Client(renewer)

	const node = "udb-synthetic"
	if _, err := cc.Catalog().Register(&api.CatalogRegistration{
		Node:     node,
		Address:  "10.213.62.100",
		NodeMeta: map[string]string{"external-node": "true"},
	}, nil); err != nil {
		t.Fatalf("register synthetic node: %v", err)
	}
	sid, _, err := cc.Session().CreateNoChecks(&api.SessionEntry{
		Name: "udb-owner", Node: node, TTL: "10s", Behavior: api.SessionBehaviorDelete, LockDelay: time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatalf("create session on %s: %v", node, err)
	}
	ctl, _, err := cc.Session().CreateNoChecks(&api.SessionEntry{Name: "udb-control", TTL: "10s"}, nil)
	if err != nil {
		t.Fatalf("create control session: %v", err)
	}
	if info, _, err := cc.Session().Info(ctl, nil); err != nil || info == nil || info.Node != cname {
		t.Fatalf("control session should hang on %s's node: %v %+v", cname, err, info)
	}
	if ok, _, err := cc.KV().Acquire(&api.KVPair{Key: "e2e/owner", Value: []byte("held"), Session: sid}, nil); err != nil || !ok {
		t.Fatalf("acquire e2e/owner with the session: %v %v", ok, err)
	}

	renew := func(id string) (alive bool, err error) {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		e, _, err := rc.Session().Renew(id, (&api.WriteOptions{}).WithContext(c))
		return e != nil, err
	}
	if alive, err := renew(sid); err != nil || !alive {
		t.Fatalf("first renewal through %s: %v %v", cl.Servers[renewer].Name, alive, err)
	}

	start := time.Now()
	cl.Kill(creator)
	t.Logf("killed %s (leader, creator of both sessions); renewing through %s every second", cname, cl.Servers[renewer].Name)
	elected := make(chan string, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, maxElection)
		defer cancel()
		nl, err := cl.WaitLeader(wctx)
		if err != nil {
			elected <- err.Error()
			return
		}
		elected <- fmt.Sprintf("new leader %s after %s", cl.Servers[nl].Name, time.Since(start).Round(time.Millisecond))
	}()

	var (
		lastOK             = start
		maxGap             time.Duration
		failures           int
		ctlDied, nodeGone  time.Duration
		removedFromRaft    time.Duration
		deadline           = start.Add(90 * time.Second)
		settleAfterCtlDied = 12 * time.Second // more than one TTL past the control's death
	)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		since := time.Since(start)
		alive, err := renew(sid)
		switch {
		case err != nil:
			failures++
			t.Logf("+%s renew failed: %v", since.Round(time.Millisecond), err)
		case !alive:
			t.Fatalf("+%s session %s on %s invalidated (control died at +%s, %s's node deregistered at +%s)",
				since.Round(time.Millisecond), sid, node, ctlDied, cname, nodeGone)
		default:
			if gap := time.Since(lastOK); gap > maxGap {
				maxGap = gap
			}
			lastOK = time.Now()
		}
		if ctlDied == 0 {
			if alive, err := renew(ctl); err == nil && !alive {
				ctlDied = since.Round(time.Millisecond)
				t.Logf("+%s control session on %s's node invalidated", ctlDied, cname)
			}
		}
		if nodeGone == 0 {
			c, cancel := context.WithTimeout(ctx, 3*time.Second)
			n, _, err := rc.Catalog().Node(cname, (&api.QueryOptions{}).WithContext(c))
			cancel()
			if err == nil && n == nil {
				nodeGone = since.Round(time.Millisecond)
				t.Logf("+%s %s's catalog node deregistered", nodeGone, cname)
			}
		}
		if removedFromRaft == 0 {
			c, cancel := context.WithTimeout(ctx, 3*time.Second)
			v, err := cl.RaftServers(c, renewer)
			cancel()
			if _, in := v[cname]; err == nil && !in {
				removedFromRaft = since.Round(time.Millisecond)
				t.Logf("+%s autopilot removed %s from raft", removedFromRaft, cname)
			}
		}
		if ctlDied != 0 && nodeGone != 0 && time.Since(start) > ctlDied+settleAfterCtlDied {
			break
		}
	}
	t.Log(<-elected)
	if ctlDied == 0 {
		t.Errorf("the control session on %s's node was never invalidated within %s: the test did not exercise the server's removal", cname, time.Since(start).Round(time.Second))
	}
	info, _, err := rc.Session().Info(sid, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || info == nil {
		t.Fatalf("session %s after the kill: %v %+v", sid, err, info)
	}
	kv, _, err := rc.KV().Get("e2e/owner", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil || kv == nil || kv.Session != sid {
		t.Fatalf("e2e/owner should still be held by %s: %v %+v", sid, err, kv)
	}
	t.Logf("session on %s alive %s after %s was killed; renewal failures %d, longest gap between renewals %s; control died +%s, node deregistered +%s, removed from raft +%s",
		node, time.Since(start).Round(time.Millisecond), cname, failures, maxGap.Round(time.Millisecond), ctlDied, nodeGone, removedFromRaft)

	// The removed server comes back through retry_join as a non-voter and is
	// promoted after server_stabilization_time.
	rs := time.Now()
	cl.Start(creator)
	t.Logf("%s rejoined as a healthy voter %s after its restart", cname, time.Since(rs).Round(time.Millisecond))
}
