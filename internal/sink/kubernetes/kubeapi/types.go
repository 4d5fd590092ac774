package kubeapi

import (
	"encoding/json"
	"fmt"
	"time"
)

// This file is the few API objects the bridge reads and writes, as JSON:
// only the fields it uses.

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

// IsReady reports the ready condition as consumers read it: an absent
// ready is true (KEP-1672: "nil should be interpreted as true").
func (c Conditions) IsReady() bool { return c.Ready == nil || *c.Ready }

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

// DNSEndpoint is an externaldns.k8s.io/v1alpha1 DNSEndpoint: records for
// external-dns (and k8s_gateway, k8gb) to publish. Its status is the
// consumers'; the bridge writes metadata and spec only.
type DNSEndpoint struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   Meta            `json:"metadata"`
	Spec       DNSEndpointSpec `json:"spec"`
}

// DNSEndpointSpec is a DNSEndpoint's records.
type DNSEndpointSpec struct {
	Endpoints []DNSRecord `json:"endpoints"`
}

// DNSRecord is one record set of a DNSEndpoint (external-dns's Endpoint).
type DNSRecord struct {
	DNSName    string   `json:"dnsName"`
	Targets    []string `json:"targets"`
	RecordType string   `json:"recordType"`
	RecordTTL  int64    `json:"recordTTL,omitempty"`
}
