package robustness_test

import (
	"context"
	"encoding/json"
	"iter"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/catalogh"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/faults"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/history"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/netns"
)

// faultKind is one kind of fault the schedule draws, with its weight.
type faultKind struct {
	kind   string
	weight int
	run    func(s *scenario, id string, st step)
}

// kinds are the faults of a run. A fault starts, lasts d and heals before
// the next one starts.
var kinds = []faultKind{
	{"bridge-kill", 3, func(s *scenario, id string, st step) {
		b, d := bridgeNames[st.target%4], st.d
		s.fault(id, "bridge-kill", b, func() {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeDown}})
			s.l.Bridges[b].Kill9(s.t)
			time.Sleep(d)
			s.startBridge(b)
		})
	}},
	{"bridge-pause", 2, func(s *scenario, id string, st step) {
		b, d := bridgeNames[st.target%4], st.d
		s.fault(id, "bridge-pause", b, func() {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgePaused}})
			resume := faults.Pause(s.t, s.l.Bridges[b].Proc)
			time.Sleep(d)
			resume()
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgePaused, Back: true}})
		})
	}},
	{"bridge-cut-registry", 2, func(s *scenario, id string, st step) {
		b, d := bridgeNames[st.target%4], st.d
		h := s.l.Hosts[b]
		s.fault(id, "bridge-cut-registry", b, func() {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry}})
			heal := faults.Partition(s.t, h, h.Dev(s.l.Cons))
			time.Sleep(d)
			heal()
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutRegistry, Back: true}})
		})
	}},
	{"bridge-cut-segment", 2, func(s *scenario, id string, st step) {
		b, d := bridgeNames[st.target%4], st.d
		h := s.l.Hosts[b]
		s.fault(id, "bridge-cut-segment", b, func() {
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutSegment}})
			heal := faults.DropUDP(s.t, h, h.Dev(s.l.Seg[b[:1]]))
			time.Sleep(d)
			heal()
			s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeCutSegment, Back: true}})
		})
	}},
	{"server-stop", 3, func(s *scenario, id string, st step) {
		sv, d := s.servers[st.target%len(s.servers)], st.d
		s.fault(id, "server-stop", sv.id, func() {
			s.stopServer(sv)
			time.Sleep(d)
			s.startServer(sv)
		})
	}},
	{"segment-silence", 2, func(s *scenario, id string, st step) {
		// A mass silence (segment a holds 6 of the 10 servers); the
		// schedule makes it long enough to outlast the guard's hold, or
		// not.
		seg, d := []string{"a", "b"}[st.target%2], st.d
		s.fault(id, "segment-silence", "segment "+seg, func() {
			for _, sv := range s.servers {
				if sv.seg == seg {
					s.stopServer(sv)
				}
			}
			time.Sleep(d)
			for _, sv := range s.servers {
				if sv.seg == seg {
					s.startServer(sv)
				}
			}
		})
	}},
	{"consul-leader-kill", 1, func(s *scenario, id string, st step) {
		d := st.d
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		i, err := s.cl.Leader(ctx)
		if err != nil {
			s.t.Logf("robustness: %s: no Consul leader to kill: %v", id, err)
			return
		}
		s.fault(id, "consul-leader-kill", s.cl.Servers[i].Name, func() {
			s.cl.Kill(i)
			time.Sleep(d)
			s.cl.Start(i)
		})
	}},
	{"consul-outage", 1, func(s *scenario, id string, st step) {
		d := st.d
		s.fault(id, "consul-outage", "every Consul server", func() {
			s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryDown}})
			for i := range s.cl.N() {
				s.cl.Stop(i)
			}
			time.Sleep(d)
			s.cl.StartAll(false)
			s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryUp}})
		})
	}},
	{"consul-wipe", 1, func(s *scenario, id string, st step) {
		// Every Consul server stopped and its data lost; the cluster
		// comes back empty at the same addresses (its ACL bootstrap from
		// the configuration's management token), and the operator
		// restores the bridges' token with the same secret and policy
		// from their runbook, then the other fleet its entry. The
		// bridges must rebuild everything: sessions, observations, the
		// lock, every registration.
		d := st.d
		s.fault(id, "consul-wipe", "every Consul server's data", func() {
			s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryDown}})
			for i := range s.cl.N() {
				s.cl.Stop(i)
			}
			time.Sleep(d)
			// Wiped from here: every read that answers from now on
			// reads the new, empty cluster.
			s.record(history.Event{Registry: &history.RegistryChange{State: history.RegistryWiped}})
			s.cl.StartAll(true)
			catalogh.ACLTokenSecret(s.t, s.l.Consul, "bridge-catalog", s.policy, s.token)
			s.registerForeign()
		})
	}},
	{"segment-loss", 1, func(s *scenario, id string, st step) {
		// 30% of the UDP datagrams lost on the way to every bridge of a
		// segment: replies go missing at random; a server still answers.
		seg := []string{"a", "b"}[st.target%2]
		s.fault(id, "segment-loss", "segment "+seg, func() {
			var heals []func()
			for _, b := range bridgeNames {
				if b[:1] == seg {
					h := s.l.Hosts[b]
					heals = append(heals, faults.Loss(s.t, h, h.Dev(s.l.Seg[seg]), 0.3))
				}
			}
			time.Sleep(st.d)
			for _, heal := range heals {
				heal()
			}
		})
	}},
	{"segment-duplicates", 1, func(s *scenario, id string, st step) {
		// Half the replies of a segment's servers to its bridges arrive
		// twice (iptables TEE on each server's leg).
		seg := []string{"a", "b"}[st.target%2]
		s.fault(id, "segment-duplicates", "segment "+seg, func() {
			duplicateReplies(s.t, s.servers, seg, s.l.Seg[seg], func(b string) netip.Addr { return s.l.Hosts[b].IP(s.l.Seg[seg]) }, st.d)
		})
	}},
	{"hostile-kv", 1, func(s *scenario, id string, st step) {
		// Someone with write access to the fleet's prefix overwrites a
		// bridge's observation with garbage; its owner repairs it within a
		// round and the leader stands the last good one in meanwhile.
		b := bridgeNames[st.target%4]
		s.fault(id, "hostile-kv", b, func() {
			key := "udp-discovery-bridge/" + catalogh.Service + "/obs/" + b + "/0"
			if _, err := s.clients[s.readerIndex()].KV().Put(&api.KVPair{Key: key, Value: []byte("not an observation")}, nil); err != nil {
				s.t.Logf("robustness: %s: write %s: %v", id, key, err)
			}
			time.Sleep(st.d)
		})
	}},
	{"rolling-restart", 1, func(s *scenario, id string, _ step) {
		s.fault(id, "rolling-restart", "every bridge", func() {
			for _, b := range bridgeNames {
				s.record(history.Event{Bridge: &history.BridgeChange{Bridge: b, State: history.BridgeDown}})
				s.l.Bridges[b].Sigterm(s.t, 10*time.Second)
				s.startBridge(b)
				time.Sleep(2 * time.Second)
			}
		})
	}},
}

var bridgeNames = []string{"a1", "a2", "b1", "b2"}

// step is one fault of a schedule: its kind, its target (an index the kind
// maps onto a bridge, a server or a segment), how long it lasts and the
// pause after it.
type step struct {
	kind   int
	target int
	d, gap time.Duration
}

// duplicateReplies has half the replies of segment seg's servers (on
// segment lan) to each bridge of seg (at bridgeIP) arrive twice, for d.
func duplicateReplies(t *testing.T, servers []*server, seg string, lan *netns.Bridge, bridgeIP func(string) netip.Addr, d time.Duration) {
	var heals []func()
	for _, sv := range servers {
		if sv.seg != seg {
			continue
		}
		for _, b := range bridgeNames {
			if b[:1] == seg {
				heals = append(heals, faults.Duplicate(t, sv.host, sv.host.Dev(lan), bridgeIP(b), 0.5))
			}
		}
	}
	time.Sleep(d)
	for _, heal := range heals {
		heal()
	}
}

// weighted is a fault kind of a schedule: its name and its weight.
type weighted struct {
	kind   string
	weight int
}

// weightsOf lists the kinds of catalog-mode runs with their weights.
func weightsOf(ks []faultKind) []weighted {
	out := make([]weighted, len(ks))
	for i, k := range ks {
		out[i] = weighted{k.kind, k.weight}
	}
	return out
}

// schedule draws the faults of a run of seed lasting dur from kinds: the
// same seed and kinds give the same faults in the same order, whatever the
// machine's pace (each fault is assumed to take its duration and 2 s
// more).
func schedule(seed int64, dur time.Duration, kinds []weighted) []step {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	var out []step
	for at := time.Duration(0); at < dur; {
		n, k := rng.IntN(total), 0
		for n >= kinds[k].weight {
			n -= kinds[k].weight
			k++
		}
		st := step{kind: k, target: rng.IntN(1 << 20), d: time.Duration(2000+rng.IntN(6000)) * time.Millisecond,
			gap: time.Duration(1000+rng.IntN(3000)) * time.Millisecond}
		if kinds[k].kind == "segment-silence" {
			st.d *= 3 // 6 s to 24 s: the guard's hold (15 s here) is outlasted or not
		}
		out = append(out, st)
		at += st.d + st.gap + 2*time.Second
	}
	return out
}

// fault records fault id's start and end around do (runFault).
func (s *scenario) fault(id, kind, target string, do func()) {
	runFault(s.t, s.record, &s.settled, 2*scSessionTTL+3*scRound+scSlack, id, kind, target, do)
}

// runFault records fault id's start and end around do. Before a segment's
// silence it waits until *settled, when the fleet has settled since the
// last fault that could move its leadership, so that mass-silence-held
// judges every silence: it is checked only while one leader runs with the
// registry up. A fault of another kind than those that leave leadership
// alone sets *settled to settle after its end (a bridge's session or
// Lease outlives its bridge, plus rounds and the slack).
func runFault(t *testing.T, record func(history.Event), settled *time.Time, settle time.Duration, id, kind, target string, do func()) {
	switch kind {
	case "segment-silence":
		if wait := time.Until(*settled); wait > 0 {
			t.Logf("robustness: %s waits %s for the fleet to settle", id, wait.Round(time.Millisecond))
			time.Sleep(wait)
		}
	case "server-stop", "segment-loss", "segment-duplicates", "hostile-kv", "hostile-configmap":
	default:
		defer func() { *settled = time.Now().Add(settle) }()
	}
	record(history.Event{Fault: &history.Fault{ID: id, Kind: kind, Target: target}})
	do()
	record(history.Event{Fault: &history.Fault{ID: id, Kind: kind, Target: target, End: true}})
}

// Log messages of the leader (internal/fleet) that make terms and writes,
// for a registry the leader calls target ("catalog", "endpointslices").
const (
	msgLeading    = "leading: merging observations into the "
	msgStopped    = "stopped writing the "
	msgReconciled = " reconciled"
)

// logEvents adds the terms and writes every bridge process logged.
func (s *scenario) logEvents() {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	for name, ps := range procs {
		for _, p := range ps {
			_, stderr := p.Output()
			s.add(leaderEvents(name, "catalog", strings.Lines(stderr))...)
		}
	}
}

// leaderEvents reads the terms and writes of bridge name out of its JSON
// log lines, for a leader writing target.
func leaderEvents(name, target string, lines iter.Seq[string]) []history.Event {
	var out []history.Event
	for line := range lines {
		var l struct {
			Time    time.Time `json:"time"`
			Message string    `json:"message"`
			Writes  int       `json:"writes"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Time.IsZero() {
			continue
		}
		e := history.Event{At: l.Time}
		switch {
		case l.Message == msgLeading+target:
			e.Term = &history.Term{Bridge: name}
		case strings.HasSuffix(l.Message, msgStopped+target):
			e.Term = &history.Term{Bridge: name, End: true}
		case l.Message == target+msgReconciled && l.Writes > 0:
			e.Write = &history.LeaderWrite{Bridge: name, Ops: l.Writes}
		default:
			continue
		}
		out = append(out, e)
	}
	return out
}
