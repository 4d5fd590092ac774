// Package kubeapi is the bridge's small client of the Kubernetes API: JSON
// over HTTPS to the API server of the in-cluster service account or of a
// kubeconfig's current context (TLS, a client certificate or a bearer
// token re-read from its file on every request), the few objects the
// kubernetes sink reads and writes (Leases, ConfigMaps, EndpointSlices, a
// Service, Events) with only the fields it uses, their reads and writes
// in one namespace (resourceVersion preconditions, server-side apply with
// one field manager, metadata-only lists), the API's refusals as a typed
// error, and a SelfSubjectAccessReview for bridge doctor.
//
// It is not client-go, on purpose: a stripped bridge binary is 15.3 MB
// without client-go and 42.2 MB with the clientset (40.4 MB with only the
// three typed clients), so client-go alone would break the image's 24 MiB
// budget (docs/design/no-client-go.md).
package kubeapi
