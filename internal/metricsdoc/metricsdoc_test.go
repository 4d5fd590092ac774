package metricsdoc_test

import (
	"context"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/checker"
	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/connlimit"
	"github.com/udp-discovery-bridge/bridge/internal/metricsdoc"
	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/relay/relaymetrics"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

var update = flag.Bool("update", false, "rewrite the metrics table of docs/operations/metrics.md")

const (
	page      = "../../docs/operations/metrics.md"
	tableFrom = "<!-- metrics (generated: go test ./internal/metricsdoc -update) -->\n"
	tableTo   = "<!-- end of metrics -->"
)

// bridgeMetrics registers what `bridge run` registers, Go and process
// collectors aside: the build info, the loop's metrics, the HTTP listeners'
// connection caps, the relay's (registered only with the relay on), and every built-in sink built from a configuration that
// enables them all (the Consul sink in catalog mode, the one with metrics
// of its own). Nothing is started: no sink talks to its registry.
func bridgeMetrics(t *testing.T) []metricsdoc.Metric {
	t.Helper()
	rec := metricsdoc.NewRecorder()
	rec.MustRegister(runner.NewBuildInfo("v0.0.0", nil))
	runner.NewMetrics(rec)
	connlimit.NewMetrics(rec)
	relaymetrics.New(rec, func() relay.Stats { return relay.Stats{} }, func() source.State { return source.State{Name: "consul"} })
	checks := appcheck.DefaultOptions()
	checks.Kind = appcheck.HTTP
	if _, err := checker.New(checker.Config{Options: checks, Registerer: rec}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := builtin.Registry()
	cfg, err := reg.Schema().Load(config.Inputs{Flags: map[string]any{
		"sinks":       reg.Names(),
		"bridge_id":   "b1",
		"file_path":   filepath.Join(dir, "servers.json"),
		"consul_mode": "catalog",
		"consul_addr": "127.0.0.1:1",
		"kubeconfig":  kubeconfig,
	}})
	if err != nil {
		t.Fatalf("a configuration with every built-in sink: %v", err)
	}
	sinks, err := reg.Build(cfg, sink.Deps{Log: zerolog.Nop(), Out: io.Discard, Registerer: rec, BridgeID: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sinks {
		_ = s.Close(context.Background())
	}
	ms, err := rec.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMetricsPage keeps the table of docs/operations/metrics.md generated
// from the metrics the bridge registers (go test ./internal/metricsdoc
// -update, or make generate).
func TestMetricsPage(t *testing.T) {
	ms := bridgeMetrics(t)
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, tableFrom), strings.Index(doc, tableTo)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q block", page, strings.TrimSpace(tableFrom), tableTo)
	}
	want := doc[:i] + tableFrom + metricsdoc.Markdown(ms) + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(page, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale: run go test ./internal/metricsdoc -update (or make generate)\n got:\n%s\nwant:\n%s",
		page, doc[i+len(tableFrom):j], metricsdoc.Markdown(ms))
}

// TestEveryDeclaredMetricIsBuilt reads the module's source for the Name of
// every prometheus *Opts literal and wants a built metric of that name: a
// metric added to a package whose constructor bridgeMetrics does not call
// would otherwise be missing from the page without a failure.
func TestEveryDeclaredMetricIsBuilt(t *testing.T) {
	built := map[string]bool{}
	for _, m := range bridgeMetrics(t) {
		built[m.Name] = true
	}
	declared := declaredNames(t, "../..")
	if len(declared) < 20 {
		t.Fatalf("found only %d metric declarations in the source: %v", len(declared), declared)
	}
	for name, where := range declared {
		found := false
		for b := range built {
			if b == name || strings.HasSuffix(b, "_"+name) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s declares the metric %q, which bridgeMetrics does not build: call its constructor there", where, name)
		}
	}
}

var optsType = regexp.MustCompile(`^(Counter|Gauge|Histogram|Summary)Opts$`)

// declaredNames maps the Name field of every prometheus.*Opts composite
// literal in the non-test Go files under root (e2e and tools aside) to the
// file and line that declares it.
func declaredNames(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "e2e", "tools", "testdata", ".git", "node_modules", "site":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			cl, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := cl.Type.(*ast.SelectorExpr)
			if !ok || !optsType.MatchString(sel.Sel.Name) {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			for _, e := range cl.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ := strconv.Unquote(lit.Value)
						out[name] = fset.Position(lit.Pos()).String()
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
