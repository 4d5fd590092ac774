package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Resource is where objects of one kind live in a namespace.
type Resource struct {
	group, version, plural, kind string
}

// The resources the bridge reads and writes.
var (
	Leases         = Resource{"coordination.k8s.io", "v1", "leases", "Lease"}
	ConfigMaps     = Resource{"", "v1", "configmaps", "ConfigMap"}
	EndpointSlices = Resource{"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"}
	Services       = Resource{"", "v1", "services", "Service"}
	Events         = Resource{"", "v1", "events", "Event"}
	// DNSEndpoints are external-dns's custom resource (its CRD must be
	// installed): the records external-dns, k8s_gateway and k8gb publish.
	DNSEndpoints = Resource{"externaldns.k8s.io", "v1alpha1", "dnsendpoints", "DNSEndpoint"}
)

// APIVersion is the apiVersion of r's objects: group/version, or the
// version alone for the core group.
func (r Resource) APIVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

// Kind is the kind of r's objects.
func (r Resource) Kind() string { return r.kind }

func (r Resource) path(ns, name string) string {
	p := "/api/" + r.version
	if r.group != "" {
		p = "/apis/" + r.group + "/" + r.version
	}
	p += "/namespaces/" + url.PathEscape(ns) + "/" + r.plural
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// FieldManager is the field manager of every write: one fixed name, so that
// server-side apply knows the fields as ours across leaders and restarts.
const FieldManager = "udp-discovery-bridge"

// Objects is the API of one namespace, by resource. A non-2xx answer is a
// *StatusError (IsNotFound, IsConflict, IsForbidden).
type Objects struct {
	c  *Client
	ns string
}

// Objects is the API of namespace ns.
func (c *Client) Objects(ns string) Objects { return Objects{c: c, ns: ns} }

// Get reads the object name into out.
func (o Objects) Get(ctx context.Context, r Resource, name string, out any) error {
	return o.c.do(ctx, http.MethodGet, r.path(o.ns, name), nil, "", nil, out)
}

// List lists the objects matching selector (label=value,...; "": all) into
// items (a pointer to a slice of objects).
func (o Objects) List(ctx context.Context, r Resource, selector string, items any) error {
	return o.list(ctx, r, selector, "", items)
}

// ListCached is List served from the API server's watch cache
// (resourceVersion=0: any version it has, usually milliseconds old)
// rather than a quorum read of etcd: for a reader that polls often, whose
// next poll corrects a cache that lags.
func (o Objects) ListCached(ctx context.Context, r Resource, selector string, items any) error {
	return o.list(ctx, r, selector, "0", items)
}

// list lists the objects matching selector as of resourceVersion rv ("":
// the latest, a quorum read).
func (o Objects) list(ctx context.Context, r Resource, selector, rv string, items any) error {
	q := url.Values{}
	if selector != "" {
		q.Set("labelSelector", selector)
	}
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	var l struct {
		Items json.RawMessage `json:"items"`
	}
	if err := o.c.do(ctx, http.MethodGet, r.path(o.ns, ""), q, "", nil, &l); err != nil {
		return err
	}
	if len(l.Items) == 0 || string(l.Items) == "null" {
		return nil
	}
	return json.Unmarshal(l.Items, items)
}

// ListMeta lists only the metadata of the objects matching selector (a
// PartialObjectMetadataList: names, labels, annotations, resourceVersions,
// no data), so that polling reads little.
func (o Objects) ListMeta(ctx context.Context, r Resource, selector string) ([]Meta, error) {
	q := url.Values{}
	if selector != "" {
		q.Set("labelSelector", selector)
	}
	var l struct {
		Items []struct {
			Metadata Meta `json:"metadata"`
		} `json:"items"`
	}
	if err := o.c.doAccept(ctx, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", http.MethodGet, r.path(o.ns, ""), q, "", nil, &l); err != nil {
		return nil, err
	}
	out := make([]Meta, len(l.Items))
	for i, it := range l.Items {
		out[i] = it.Metadata
	}
	return out, nil
}

func (o Objects) send(ctx context.Context, method string, r Resource, name, contentType string, q url.Values, obj, out any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("kubernetes encode %s %s: %w", r.kind, name, err)
	}
	if q == nil {
		q = url.Values{}
	}
	q.Set("fieldManager", FieldManager)
	return o.c.do(ctx, method, r.path(o.ns, name), q, contentType, b, out)
}

// Create creates obj (409 when it exists), the object as created in out
// (nil: discarded).
func (o Objects) Create(ctx context.Context, r Resource, obj, out any) error {
	return o.send(ctx, http.MethodPost, r, "", "application/json", nil, obj, out)
}

// Update replaces the object name; the resourceVersion in obj's metadata
// is the precondition (409 when it changed).
func (o Objects) Update(ctx context.Context, r Resource, name string, obj, out any) error {
	return o.send(ctx, http.MethodPut, r, name, "application/json", nil, obj, out)
}

// Apply server-side applies obj with the fixed field manager and force; a
// resourceVersion in obj's metadata is a precondition (409 when it changed).
func (o Objects) Apply(ctx context.Context, r Resource, name string, obj, out any) error {
	return o.send(ctx, http.MethodPatch, r, name, "application/apply-patch+yaml", url.Values{"force": {"true"}}, obj, out)
}

// Remove deletes the object name if its resourceVersion is still rv ("":
// unconditionally).
func (o Objects) Remove(ctx context.Context, r Resource, name, rv string) error {
	body := map[string]any{"kind": "DeleteOptions", "apiVersion": "v1"}
	if rv != "" {
		body["preconditions"] = map[string]string{"resourceVersion": rv}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return o.c.do(ctx, http.MethodDelete, r.path(o.ns, name), nil, "application/json", b, nil)
}

// Selector joins label=value pairs into a label selector.
func Selector(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + "=" + kv[i+1])
	}
	return b.String()
}
