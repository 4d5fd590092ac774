package catalogh

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulagent"
	"github.com/udp-discovery-bridge/bridge/e2e/internal/consulcluster"
)

// ACLManagement is the initial management token of the ACL clusters.
const ACLManagement = "3f0e9c1b-7a52-4d6e-8b90-5c2a1d4e7f36"

// ACLToken creates a policy of rules and a token holding only it (with the
// management client c) and returns the token's secret.
func ACLToken(t testing.TB, c *api.Client, name, rules string) string {
	t.Helper()
	return ACLTokenSecret(t, c, name, rules, "")
}

// ACLTokenSecret is ACLToken with the token's secret given (an operator
// restoring a token after a data loss); "" lets Consul choose it.
func ACLTokenSecret(t testing.TB, c *api.Client, name, rules, secret string) string {
	t.Helper()
	pol, _, err := c.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		t.Fatalf("create policy %s:\n%s\n%v", name, rules, err)
	}
	tok, _, err := c.ACL().TokenCreate(&api.ACLToken{SecretID: secret, Description: name, Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatalf("create token of %s: %v", name, err)
	}
	return tok.SecretID
}

// WriteTokenFile writes secret to a fresh file and returns its path.
func WriteTokenFile(t testing.TB, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartACLCluster starts the three-server cluster with ACLs on
// (default_policy deny); l.Consul holds the management token.
func (l *Lab) StartACLCluster() *consulcluster.Cluster {
	l.T.Helper()
	cl := consulcluster.Start(l.T, l.Lab, l.Cons, consulcluster.Options{Subnet: "10.213.30.0/24", ACLManagementToken: ACLManagement})
	l.ConsulAddrs = strings.Join(cl.HTTPAddrs(), ",")
	l.Consul = cl.Client(0)
	return cl
}

// StartCluster runs three Consul servers on the Consul network
// (10.213.30.11-13); every bridge is given all three addresses.
func (l *Lab) StartCluster() *consulcluster.Cluster {
	l.T.Helper()
	cl := consulcluster.Start(l.T, l.Lab, l.Cons, consulcluster.Options{Subnet: "10.213.30.0/24"})
	l.ConsulAddrs = strings.Join(cl.HTTPAddrs(), ",")
	l.Consul = cl.Client(0)
	return cl
}

// UseLiveServer points the test's reads at a running server other than
// skip.
func (l *Lab) UseLiveServer(cl *consulcluster.Cluster, skip int) {
	for i := range cl.N() {
		if i != skip && cl.Running(i) {
			l.Consul = cl.Client(i)
			return
		}
	}
	l.T.Fatal("no running Consul server")
}

// Poller reads the catalog every 100 ms and records every read in which
// a wanted server was missing or not passing, or any ID was listed twice.
type Poller struct {
	mu       sync.Mutex
	reads    int
	missing  []string
	critical []string
	errs     int
	stop     chan struct{}
	done     chan struct{}
}

// Poll starts a Poller of want (ID -> status; its keys are the wanted
// servers) on l.Consul.
func (l *Lab) Poll(want map[string]string) *Poller {
	p := &Poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, _, _, err := Entries(l.T, l.Consul)
			p.mu.Lock()
			p.reads++
			if err != nil {
				p.errs++
				p.mu.Unlock()
				continue
			}
			for id := range want {
				switch s, ok := st[id]; {
				case !ok:
					p.missing = append(p.missing, time.Now().Format("15:04:05.000")+" "+id)
				case s != "passing":
					p.critical = append(p.critical, time.Now().Format("15:04:05.000")+" "+id+" "+s)
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// Finish stops the poller and returns its reads, the reads that missed a
// wanted server or found it not passing, and how many reads failed.
func (p *Poller) Finish() (reads int, missing, critical []string, errs int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads, p.missing, p.critical, p.errs
}

// StartDevConsul runs one dev agent (a server) on the Consul network.
func (l *Lab) StartDevConsul() {
	l.T.Helper()
	h := l.Lab.Host("consul", l.Cons, "10.213.30.10/24")
	ag := consulagent.Start(l.T, consulagent.Options{Netns: h.NS, BindAddr: "10.213.30.10"})
	l.Consul = ag.Client()
	l.ConsulAddrs = "10.213.30.10:8500"
}
