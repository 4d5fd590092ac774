// Package kubernetes is the kubernetes sink: the discovered servers as the
// EndpointSlices of a selectorless Service, so that apps in a cluster
// resolve <service>.<namespace>.svc.cluster.local with no Consul.
//
// It plugs into the registry-neutral fleet core (internal/fleet) as Consul's
// catalog mode does: every bridge keeps a Lease of its own (its liveness) and
// publishes its observation (package observation's encoding) in a ConfigMap;
// the bridges elect one leader with a coordination.k8s.io Lease; the leader
// merges the observations of the live bridges and is the only writer of the
// Service and its EndpointSlices. Every write is fenced: a slice is written
// with its resourceVersion as precondition, and the leader Lease is read
// back before each write (see docs/design/kubernetes-fencing.md).
//
// The API is spoken by the small REST client of package kubeapi, not by
// client-go (image size: see that package).
package kubernetes
