package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is the few API objects the sink reads and writes, as JSON, and
// their resources.

// Meta is the part of an object's metadata the sink uses.
type Meta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	OwnerReferences []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference links a slice to its Service (garbage collection).
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
}

// MicroTime is a Lease's time: RFC 3339 with microseconds.
type MicroTime struct{ time.Time }

const microLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalJSON writes t in UTC with microseconds, as the API server does.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(microLayout))
}

// UnmarshalJSON reads a MicroTime (RFC 3339 with or without a fraction).
func (t *MicroTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("lease time %q: %w", s, err)
	}
	t.Time = v
	return nil
}

// Lease is a coordination.k8s.io/v1 Lease.
type Lease struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   Meta      `json:"metadata"`
	Spec       LeaseSpec `json:"spec"`
}

// LeaseSpec is a Lease's spec.
type LeaseSpec struct {
	HolderIdentity       string     `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds int32      `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     int32      `json:"leaseTransitions,omitempty"`
}

// ConfigMap is a v1 ConfigMap; the observation's chunks are its binaryData.
type ConfigMap struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   Meta              `json:"metadata"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice.
type EndpointSlice struct {
	APIVersion  string      `json:"apiVersion"`
	Kind        string      `json:"kind"`
	Metadata    Meta        `json:"metadata"`
	AddressType string      `json:"addressType"`
	Endpoints   []Endpoint  `json:"endpoints"`
	Ports       []SlicePort `json:"ports"`
}

// Endpoint is one server in a slice.
type Endpoint struct {
	Addresses  []string   `json:"addresses"`
	Conditions Conditions `json:"conditions"`
}

// Conditions are an endpoint's conditions.
type Conditions struct {
	Ready       *bool `json:"ready,omitempty"`
	Serving     *bool `json:"serving,omitempty"`
	Terminating *bool `json:"terminating,omitempty"`
}

// SlicePort is the port of a slice's endpoints.
type SlicePort struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// Service is a v1 Service (selectorless).
type Service struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   Meta        `json:"metadata"`
	Spec       ServiceSpec `json:"spec"`
}

// ServiceSpec is a Service's spec.
type ServiceSpec struct {
	Type      string        `json:"type,omitempty"`
	ClusterIP string        `json:"clusterIP,omitempty"`
	Ports     []ServicePort `json:"ports"`
}

// ServicePort is a Service's port.
type ServicePort struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// resource is where objects of one kind live in a namespace.
type resource struct {
	group, version, plural, kind string
}

var (
	leases     = resource{"coordination.k8s.io", "v1", "leases", "Lease"}
	configMaps = resource{"", "v1", "configmaps", "ConfigMap"}
	slicesRes  = resource{"discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"}
	services   = resource{"", "v1", "services", "Service"}
	events     = resource{"", "v1", "events", "Event"}
)

func (r resource) apiVersion() string {
	if r.group == "" {
		return r.version
	}
	return r.group + "/" + r.version
}

func (r resource) path(ns, name string) string {
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

// objects is the API of one namespace, by resource.
type objects struct {
	c  *Client
	ns string
}

func (o objects) get(ctx context.Context, r resource, name string, out any) error {
	return o.c.do(ctx, http.MethodGet, r.path(o.ns, name), nil, "", nil, out)
}

// list lists the objects matching selector (label=value,...) into out (a
// pointer to a list's items holder).
func (o objects) list(ctx context.Context, r resource, selector string, items any) error {
	q := url.Values{}
	if selector != "" {
		q.Set("labelSelector", selector)
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

// listMeta lists only the metadata of the objects matching selector (a
// PartialObjectMetadataList: names, labels, annotations, resourceVersions,
// no data), so that polling reads little.
func (o objects) listMeta(ctx context.Context, r resource, selector string) ([]Meta, error) {
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

func (o objects) send(ctx context.Context, method string, r resource, name, contentType string, q url.Values, obj, out any) error {
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

// create creates obj (409 when it exists).
func (o objects) create(ctx context.Context, r resource, obj, out any) error {
	return o.send(ctx, http.MethodPost, r, "", "application/json", nil, obj, out)
}

// update replaces the object name; the resourceVersion in obj's metadata
// is the precondition (409 when it changed).
func (o objects) update(ctx context.Context, r resource, name string, obj, out any) error {
	return o.send(ctx, http.MethodPut, r, name, "application/json", nil, obj, out)
}

// apply server-side applies obj with the fixed field manager and force; a
// resourceVersion in obj's metadata is a precondition (409 when it changed).
func (o objects) apply(ctx context.Context, r resource, name string, obj, out any) error {
	return o.send(ctx, http.MethodPatch, r, name, "application/apply-patch+yaml", url.Values{"force": {"true"}}, obj, out)
}

// remove deletes the object name if its resourceVersion is still rv ("":
// unconditionally).
func (o objects) remove(ctx context.Context, r resource, name, rv string) error {
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

// selector joins label=value pairs.
func selector(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + "=" + kv[i+1])
	}
	return b.String()
}
