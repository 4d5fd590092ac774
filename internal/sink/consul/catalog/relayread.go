package catalog

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// This file is the relay's reader of the catalog (relay_source consul):
// the fleet's servers that are passing, by blocking queries.

// DefaultRelayWait is how long one of the relay's blocking queries waits
// for a change: short enough that the age of the relayed set says the
// connection lives (a set is stale once it is older than this wait, its
// jitter and relay_max_stale), long enough that a fleet whose servers do
// not change costs Consul one read per bridge every 10 s.
const DefaultRelayWait = 10 * time.Second

// RelayEvery is the least time between the starts of two of the relay's
// blocking queries: Consul advises rate-limiting them, lest a catalog that
// changes all the time make its readers loop; it adds at most 100 ms to
// the time a change takes to be relayed.
const RelayEvery = 100 * time.Millisecond

// RelayPeriod is the longest a healthy blocking query of wait takes:
// Consul adds up to wait/16 of jitter.
func RelayPeriod(wait time.Duration) time.Duration { return wait + wait/16 }

// RelayTimeout bounds one blocking query of wait: its period and 5 s for
// the answer to travel; a connection that hangs longer is given up.
func RelayTimeout(wait time.Duration) time.Duration { return RelayPeriod(wait) + 5*time.Second }

// passingAPI is what PassingReader asks of Consul: the passing instances
// of a service (/v1/health/service/<service>?passing), filtered on the
// servers by q.Filter, a blocking query with q.WaitIndex, each instance
// handed to each as it is decoded.
type passingAPI interface {
	PassingEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) (*api.QueryMeta, error)
}

// PassingEntries implements passingAPI with consul/api.
func (a apiCatalog) PassingEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) (*api.QueryMeta, error) {
	return a.healthService(service, true, q, each)
}

// PassingReader reads the servers of one fleet that the catalog holds as
// passing, for the relay: the instances of the service whose every check
// (the observed check, the app check) passes, of this fleet alone (service
// meta managed-by and bridge-fleet, filtered on the servers, and a node of
// the fleet's: the server's own or the fleet's shared node, with the same
// meta), never another fleet's or owner's. Its Read has the signature of
// the relay's source.Reader.
type PassingReader struct {
	api            passingAPI
	service, fleet string
	shared, filter string
	wait           time.Duration
	redact         func(error) error
	rules          consulclient.RulePrefixes
}

// NewPassingReader returns the reader of the fleet cfg configures
// (defaulted and validated as the sink does), with a client of its own
// built from cfg.Client (token file, TLS, the failover between servers),
// whose blocking queries wait at most wait (0: DefaultRelayWait). It makes
// no network call.
func NewPassingReader(cfg Config, wait time.Duration) (*PassingReader, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relay source consul: %w", err)
	}
	client, err := cfg.Client.NewClient()
	if err != nil {
		return nil, fmt.Errorf("relay source consul: %w", err)
	}
	return newPassingReader(cfg, apiCatalog{c: client.API}, client.Redact, wait)
}

func newPassingReader(cfg Config, a passingAPI, redact func(error) error, wait time.Duration) (*PassingReader, error) {
	fleet := cfg.Catalog.KVPrefix
	filter, err := ownedFilter(fleet)
	if err != nil {
		return nil, fmt.Errorf("relay source consul: %w", err)
	}
	if wait <= 0 {
		wait = DefaultRelayWait
	}
	if redact == nil {
		redact = func(err error) error { return err }
	}
	return &PassingReader{api: a, service: cfg.Service, fleet: fleet, shared: SharedNodeName(cfg.Service, fleet), filter: filter,
		wait: wait, redact: redact, rules: rulesOf(cfg.Service, fleet)}, nil
}

// Wait is how long one blocking query waits for a change.
func (r *PassingReader) Wait() time.Duration { return r.wait }

// Read returns the fleet's passing servers (the service's address and
// port; the node's address when the service has none), blocking until the
// catalog changed after index, or Wait passed, when index is not 0. The
// next index follows Consul's advice: a smaller index than the last means
// the servers' state was replaced (read afresh: 0), and 0 is never blocked
// on (1). An entry whose address is not an IP is left out. Errors name the
// service and the fleet, and the ACL rule missing when Consul refused.
func (r *PassingReader) Read(ctx context.Context, index uint64) ([]netip.AddrPort, uint64, error) {
	q := (&api.QueryOptions{Filter: r.filter, WaitIndex: index, WaitTime: r.wait}).WithContext(ctx)
	var out []netip.AddrPort
	meta, err := r.api.PassingEntries(r.service, q, func(se *api.ServiceEntry) {
		if _, ok := fleetEntry(se, r.fleet, r.shared); !ok {
			return
		}
		addr := se.Service.Address
		if addr == "" {
			addr = se.Node.Address
		}
		ip, perr := netip.ParseAddr(addr)
		if perr != nil || se.Service.Port < 0 || se.Service.Port > 65535 {
			return
		}
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(se.Service.Port)))
	})
	if err != nil {
		return nil, 0, consulclient.OpError(fmt.Sprintf("read the passing instances of service %s (fleet %s)", r.service, r.fleet), r.redact(err), r.rules)
	}
	var next uint64
	if meta != nil {
		next = meta.LastIndex
	}
	switch {
	case next == 0:
		next = 1
	case next < index:
		next = 0
	}
	return out, next, nil
}
