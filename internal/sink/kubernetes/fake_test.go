package kubernetes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// labelValue is what the API server accepts as a label value.
var labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// fakeAPI is an in-memory Kubernetes API server for the unit tests, with the
// semantics the sink relies on: resourceVersion preconditions on PUT,
// apply PATCH and DELETE (409), AlreadyExists on POST (409), label
// selectors of equality. The real one runs in the e2e test
// (e2e/k8s/k8s_sink_test.go).
type fakeAPI struct {
	mu     sync.Mutex
	rv     int
	objs   map[string]map[string]any // by collection path, then name
	writes map[string]int            // "METHOD plural"
	gets   map[string]int            // GETs of one object, by plural
	lists  map[string]int            // GETs of a list, by plural
	srv    *httptest.Server
	refuse func(method, path string) int // status to answer instead (0: none)
	// hang, when it says so, leaves a request unanswered until its
	// client gives up (a partition: no answer, no error).
	hang    func(method, path string) bool
	lastReq *http.Request
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{objs: map[string]map[string]any{}, writes: map[string]int{}, gets: map[string]int{}, lists: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client is a Client of the fake in namespace ns.
func (f *fakeAPI) client(t *testing.T) *kubeapi.Client {
	c, err := kubeapi.NewClientAt(f.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeAPI) writeCount(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, v := range f.writes {
		if strings.HasSuffix(k, " "+kind) {
			n += v
		}
	}
	return n
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "reason": reason, "message": msg, "code": code})
}

func meta(o map[string]any) map[string]any {
	m, _ := o["metadata"].(map[string]any)
	if m == nil {
		m = map[string]any{}
		o["metadata"] = m
	}
	return m
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	hang := f.hang != nil && f.hang(r.Method, r.URL.Path)
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastReq = r
	if f.refuse != nil {
		if code := f.refuse(r.Method, r.URL.Path); code != 0 {
			status(w, code, "Refused", "refused by the test")
			return
		}
	}
	// /api/v1/namespaces/ns/plural[/name] or /apis/g/v/namespaces/ns/plural[/name]
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	i := 0
	for i < len(parts) && parts[i] != "namespaces" {
		i++
	}
	if i+2 >= len(parts) {
		status(w, 404, "NotFound", "no such path")
		return
	}
	coll := strings.Join(parts[:i+3], "/")
	plural := parts[i+2]
	name := ""
	if len(parts) > i+3 {
		name = parts[i+3]
	}
	items := f.objs[coll]
	if items == nil {
		items = map[string]any{}
		f.objs[coll] = items
	}
	body, _ := io.ReadAll(r.Body)
	var in map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			status(w, 400, "BadRequest", err.Error())
			return
		}
	}
	if r.Method != http.MethodGet {
		f.writes[r.Method+" "+plural]++
	}
	cur, exists := items[name].(map[string]any)
	curRV := ""
	if exists {
		curRV, _ = meta(cur)["resourceVersion"].(string)
	}
	store := func(o map[string]any, code int) {
		labels, _ := meta(o)["labels"].(map[string]any)
		for k, v := range labels {
			if s, _ := v.(string); !labelValue.MatchString(s) {
				status(w, 422, "Invalid", "metadata.labels: Invalid value: "+strconv.Quote(s)+" of "+k+": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")
				return
			}
		}
		f.rv++
		m := meta(o)
		m["resourceVersion"] = strconv.Itoa(f.rv)
		m["name"] = name
		if exists {
			m["uid"] = meta(cur)["uid"]
		} else {
			m["uid"] = "uid-" + strconv.Itoa(f.rv)
		}
		items[name] = o
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(o)
	}
	wantRV := func() string {
		if in == nil {
			return ""
		}
		v, _ := meta(in)["resourceVersion"].(string)
		return v
	}
	switch r.Method {
	case http.MethodGet:
		if name != "" {
			f.gets[plural]++
			if !exists {
				status(w, 404, "NotFound", name+" not found")
				return
			}
			_ = json.NewEncoder(w).Encode(cur)
			return
		}
		f.lists[plural]++
		var sel [][2]string
		for _, kv := range strings.Split(r.URL.Query().Get("labelSelector"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				sel = append(sel, [2]string{k, v})
			}
		}
		list := []any{}
		for _, o := range items {
			labels, _ := meta(o.(map[string]any))["labels"].(map[string]any)
			ok := true
			for _, kv := range sel {
				if labels[kv[0]] != kv[1] {
					ok = false
				}
			}
			if ok {
				list = append(list, o)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": list})
	case http.MethodPost:
		name, _ = meta(in)["name"].(string)
		if _, ok := items[name]; ok {
			status(w, 409, "AlreadyExists", name+" already exists")
			return
		}
		exists = false
		store(in, 201)
	case http.MethodPut:
		if !exists {
			status(w, 404, "NotFound", name+" not found")
			return
		}
		if rv := wantRV(); rv != "" && rv != curRV {
			status(w, 409, "Conflict", "the object has been modified")
			return
		}
		store(in, 200)
	case http.MethodPatch:
		if r.Header.Get("Content-Type") != "application/apply-patch+yaml" || r.URL.Query().Get("fieldManager") != kubeapi.FieldManager {
			status(w, 415, "UnsupportedMediaType", "want a server-side apply with our field manager")
			return
		}
		if rv := wantRV(); rv != "" && rv != curRV {
			status(w, 409, "Conflict", "the object has been modified")
			return
		}
		store(in, 200)
	case http.MethodDelete:
		if !exists {
			status(w, 404, "NotFound", name+" not found")
			return
		}
		if pre, _ := in["preconditions"].(map[string]any); pre != nil && pre["resourceVersion"] != curRV {
			status(w, 409, "Conflict", "precondition failed")
			return
		}
		delete(items, name)
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "status": "Success"})
	}
}

// remove deletes an object behind the sink's back; it reports whether it
// existed.
func (f *fakeAPI) remove(plural, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for coll, items := range f.objs {
		if _, ok := items[name]; ok && strings.HasSuffix(coll, "/"+plural) {
			delete(items, name)
			return true
		}
	}
	return false
}

// bump changes an object behind the sink's back (a new resourceVersion).
func (f *fakeAPI) bump(plural, name string) { f.edit(plural, name, func(map[string]any) {}) }

// edit changes an object behind the sink's back with change, giving it a
// new resourceVersion; it reports whether the object exists.
func (f *fakeAPI) edit(plural, name string, change func(o map[string]any)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for coll, items := range f.objs {
		if strings.HasSuffix(coll, "/"+plural) {
			if o, ok := items[name].(map[string]any); ok {
				change(o)
				f.rv++
				meta(o)["resourceVersion"] = strconv.Itoa(f.rv)
				found = true
			}
		}
	}
	return found
}

// listCount is how many lists of plural the fake answered.
func (f *fakeAPI) listCount(plural string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists[plural]
}

// setRefuse makes the fake answer refuse's status instead (nil: none).
func (f *fakeAPI) setRefuse(refuse func(method, path string) int) {
	f.mu.Lock()
	f.refuse = refuse
	f.mu.Unlock()
}
