package catalog

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
)

// TestServiceEntriesStreamed: the catalog read hands each entry over as it
// is decoded (consul/api gets an empty array), keeps consul/api's handling
// of errors, and still works with a client that has no streamTransport.
func TestServiceEntriesStreamed(t *testing.T) {
	const body = `[{"Node":{"Node":"n1","Address":"10.0.0.1"},"Service":{"ID":"s1","Service":"django","Port":8000},"Checks":[{"CheckID":"c1","Status":"passing"}]},
		{"Node":{"Node":"n2"},"Service":{"ID":"s2","Service":"django"},"Checks":[]},
		{"Node":{"Node":"n3"},"Service":{"ID":"s3","Service":"django"}}]`
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/health/service/django" || r.URL.Query().Get("filter") != "x" {
			t.Errorf("request %s", r.URL)
		}
		w.Header().Set("X-Consul-Index", "7")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write([]byte(body))
		} else {
			_, _ = w.Write([]byte("Permission denied: token lacks service:read"))
		}
	}))
	defer srv.Close()
	for _, streamed := range []bool{true, false} {
		client, err := consulclient.ClientConfig{Addr: srv.URL}.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		if !streamed {
			client.API, _ = api.NewClient(&api.Config{Address: srv.URL})
		}
		status = http.StatusOK
		var ids []string
		q := (&api.QueryOptions{Filter: "x"}).WithContext(context.Background())
		err = apiCatalog{c: client.API}.ServiceEntries("django", q, func(e *api.ServiceEntry) {
			ids = append(ids, e.Node.Node+"/"+e.Service.ID)
		})
		if err != nil || strings.Join(ids, " ") != "n1/s1 n2/s2 n3/s3" {
			t.Errorf("streamed %v: entries %v, %v", streamed, ids, err)
		}
		status = http.StatusForbidden
		err = apiCatalog{c: client.API}.ServiceEntries("django", q, func(*api.ServiceEntry) { t.Error("an entry of a refused read") })
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "Permission denied") {
			t.Errorf("streamed %v: refused read: %v", streamed, err)
		}
	}
}
