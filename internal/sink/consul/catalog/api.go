package catalog

import (
	"encoding/json"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// catalogAPI is the part of consul/api catalog mode uses: sessions, the
// observation keys, the catalog read and transactions. Tests give the sink
// an in-memory implementation.
type catalogAPI interface {
	// RegisterNode registers the fleet's synthetic node (sessions hang on it).
	RegisterNode(reg *api.CatalogRegistration, q *api.WriteOptions) error
	CreateSession(se *api.SessionEntry, q *api.WriteOptions) (string, error)
	RenewSession(id string, q *api.WriteOptions) (*api.SessionEntry, error)
	DestroySession(id string, q *api.WriteOptions) error
	NodeSessions(node string, q *api.QueryOptions) ([]*api.SessionEntry, error)
	// ListKV lists the keys under prefix (a blocking query with
	// q.WaitIndex).
	ListKV(prefix string, q *api.QueryOptions) (api.KVPairs, *api.QueryMeta, error)
	// ServiceEntries reads the instances of a service with their node and
	// checks, filtered on the server by q.Filter, and hands each to each as
	// it is decoded: the leader never holds them all at once (10,000
	// decoded entries are ~40 MiB).
	ServiceEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) error
	// Node reads a node of the catalog (nil when there is none), to find
	// out who holds a node name the fleet wants.
	Node(node string, q *api.QueryOptions) (*api.Node, error)
	// Txn applies ops atomically (at most 64).
	Txn(ops api.TxnOps, q *api.QueryOptions) (bool, *api.TxnResponse, error)
	// Lock prepares a lock (with opts.Session set, held by that session).
	Lock(opts *api.LockOptions) (consulclient.Locker, error)
}

// apiCatalog implements catalogAPI with a consul/api client. Its writes
// return a *consulclient.RateLimitError when Consul refused them for its rate limit
// (the client's transport notes it: see consulclient.NoteRateLimit).
type apiCatalog struct{ c *api.Client }

// noted returns w with a context that notes rate-limit answers.
func noted(w *api.WriteOptions) (*api.WriteOptions, *consulclient.RateLimitNote) {
	ctx, n := consulclient.NoteRateLimit(w.Context())
	return w.WithContext(ctx), n
}

func (a apiCatalog) RegisterNode(reg *api.CatalogRegistration, q *api.WriteOptions) error {
	q, n := noted(q)
	_, err := a.c.Catalog().Register(reg, q)
	return n.Wrap(err)
}

func (a apiCatalog) CreateSession(se *api.SessionEntry, q *api.WriteOptions) (string, error) {
	// CreateNoChecks sends the empty check list: Create would drop it and
	// bind the session to serfHealth, which a synthetic node does not have.
	q, n := noted(q)
	id, _, err := a.c.Session().CreateNoChecks(se, q)
	return id, n.Wrap(err)
}

func (a apiCatalog) RenewSession(id string, q *api.WriteOptions) (*api.SessionEntry, error) {
	q, n := noted(q)
	se, _, err := a.c.Session().Renew(id, q)
	return se, n.Wrap(err)
}

func (a apiCatalog) DestroySession(id string, q *api.WriteOptions) error {
	q, n := noted(q)
	_, err := a.c.Session().Destroy(id, q)
	return n.Wrap(err)
}

func (a apiCatalog) NodeSessions(node string, q *api.QueryOptions) ([]*api.SessionEntry, error) {
	s, _, err := a.c.Session().Node(node, q)
	return s, err
}

func (a apiCatalog) ListKV(prefix string, q *api.QueryOptions) (api.KVPairs, *api.QueryMeta, error) {
	return a.c.KV().List(prefix, q)
}

func (a apiCatalog) ServiceEntries(service string, q *api.QueryOptions, each func(*api.ServiceEntry)) error {
	_, err := a.healthService(service, false, q, each)
	return err
}

// healthService reads /v1/health/service/<service> (?passing when
// passing), handing each entry to each as it is decoded.
func (a apiCatalog) healthService(service string, passing bool, q *api.QueryOptions, each func(*api.ServiceEntry)) (*api.QueryMeta, error) {
	ctx := consulclient.StreamArray(q.Context(), func(dec *json.Decoder) error {
		var e api.ServiceEntry
		if err := dec.Decode(&e); err != nil {
			return err
		}
		each(&e)
		return nil
	})
	entries, meta, err := a.c.Health().Service(service, "", passing, q.WithContext(ctx))
	for _, e := range entries { // a client without streamTransport decoded them all
		each(e)
	}
	return meta, err
}

func (a apiCatalog) Node(node string, q *api.QueryOptions) (*api.Node, error) {
	n, _, err := a.c.Catalog().Node(node, q)
	if err != nil || n == nil {
		return nil, err
	}
	return n.Node, nil
}

func (a apiCatalog) Txn(ops api.TxnOps, q *api.QueryOptions) (bool, *api.TxnResponse, error) {
	ctx, n := consulclient.NoteRateLimit(q.Context())
	ok, resp, _, err := a.c.Txn().Txn(ops, q.WithContext(ctx))
	return ok, resp, n.Wrap(err)
}

func (a apiCatalog) Lock(opts *api.LockOptions) (consulclient.Locker, error) {
	return a.c.LockOpts(opts)
}
