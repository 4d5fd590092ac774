package kubeapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// request is one request as the server saw it.
type request struct {
	method, path, query, contentType, accept string
	body                                     map[string]any
}

// recorder is an API server that records each request and answers code
// with answer.
func recorder(t *testing.T, code int, answer string) (*Client, *[]request) {
	t.Helper()
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rq := request{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept")}
		_ = json.Unmarshal(b, &rq.body)
		seen = append(seen, rq)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClientAt(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, &seen
}

// The writes' wire: paths by group, the fixed field manager, server-side
// apply forced, a delete's resourceVersion precondition, a metadata-only
// list, a list from the watch cache.
func TestObjectsRequests(t *testing.T) {
	c, seen := recorder(t, 200, `{"items":[{"metadata":{"name":"x","resourceVersion":"7"}}]}`)
	o := c.Objects("lab")
	ctx := context.Background()
	cm := ConfigMap{APIVersion: ConfigMaps.APIVersion(), Kind: ConfigMaps.Kind(), Metadata: Meta{Name: "x"}}
	steps := []struct {
		do   func() error
		want request
	}{
		{func() error { return o.Apply(ctx, ConfigMaps, "x", &cm, nil) },
			request{method: "PATCH", path: "/api/v1/namespaces/lab/configmaps/x", query: "fieldManager=udp-discovery-bridge&force=true", contentType: "application/apply-patch+yaml"}},
		{func() error { return o.Create(ctx, Leases, &Lease{}, nil) },
			request{method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/lab/leases", query: "fieldManager=udp-discovery-bridge", contentType: "application/json"}},
		{func() error { return o.Update(ctx, EndpointSlices, "s", &EndpointSlice{}, nil) },
			request{method: "PUT", path: "/apis/discovery.k8s.io/v1/namespaces/lab/endpointslices/s", query: "fieldManager=udp-discovery-bridge", contentType: "application/json"}},
		{func() error { return o.Remove(ctx, Services, "svc", "42") },
			request{method: "DELETE", path: "/api/v1/namespaces/lab/services/svc", contentType: "application/json"}},
		{func() error {
			m, err := o.ListMeta(ctx, ConfigMaps, Selector("a", "b", "c", "d"))
			if err == nil && (len(m) != 1 || m[0].ResourceVersion != "7") {
				t.Errorf("ListMeta = %+v", m)
			}
			return err
		}, request{method: "GET", path: "/api/v1/namespaces/lab/configmaps", query: "labelSelector=a%3Db%2Cc%3Dd",
			accept: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}},
		{func() error {
			var items []EndpointSlice
			err := o.ListCached(ctx, EndpointSlices, Selector("a", "b"), &items)
			if err == nil && (len(items) != 1 || items[0].Metadata.Name != "x") {
				t.Errorf("ListCached = %+v", items)
			}
			return err
		}, request{method: "GET", path: "/apis/discovery.k8s.io/v1/namespaces/lab/endpointslices", query: "labelSelector=a%3Db&resourceVersion=0",
			accept: "application/json"}},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := (*seen)[len(*seen)-1]
		if got.method != st.want.method || got.path != st.want.path || got.query != st.want.query || got.contentType != st.want.contentType ||
			st.want.accept != "" && got.accept != st.want.accept {
			t.Errorf("step %d: %+v\nwant %+v", i, got, st.want)
		}
	}
	del := (*seen)[3].body
	if pre, _ := del["preconditions"].(map[string]any); del["kind"] != "DeleteOptions" || pre["resourceVersion"] != "42" {
		t.Errorf("delete body %v, want DeleteOptions with resourceVersion 42", del)
	}
}

// A refusal is a *StatusError with the Status object's reason and message
// (or the HTTP status text and the body's start); the predicates tell the
// codes apart.
func TestStatusError(t *testing.T) {
	for _, tt := range []struct {
		code                          int
		answer, want                  string
		conflict, notFound, forbidden bool
	}{
		{409, `{"kind":"Status","reason":"Conflict","message":"the object has been modified"}`,
			"kubernetes GET /api/v1/namespaces/lab/services/x: 409 Conflict: the object has been modified", true, false, false},
		{404, `{"kind":"Status","reason":"NotFound","message":"x not found"}`, "kubernetes GET /api/v1/namespaces/lab/services/x: 404 NotFound: x not found", false, true, false},
		{403, `nope`, "kubernetes GET /api/v1/namespaces/lab/services/x: 403 Forbidden: nope", false, false, true},
	} {
		c, _ := recorder(t, tt.code, tt.answer)
		err := c.Objects("lab").Get(context.Background(), Services, "x", &Service{})
		if err == nil || err.Error() != tt.want || IsConflict(err) != tt.conflict || IsNotFound(err) != tt.notFound || IsForbidden(err) != tt.forbidden {
			t.Errorf("%d: %v (conflict %v, not found %v, forbidden %v), want %q", tt.code, err, IsConflict(err), IsNotFound(err), IsForbidden(err), tt.want)
		}
	}
}
