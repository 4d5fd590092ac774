package chart_test

// The alerts and the dashboard: the plain rules file and the chart's
// PrometheusRule pass `promtool check rules` (a real promtool built from
// Prometheus's module, internal/prombin) and the rules' unit tests
// (testdata/prometheus-rules.test.yaml); the PrometheusRule holds exactly
// the plain file's groups; the dashboard ConfigMap holds exactly the
// dashboard file; both are off by default.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/udp-discovery-bridge/bridge/e2e/internal/prombin"
)

// prometheusRule is the prometheus-operator PrometheusRule the chart renders
// (monitoring.coreos.com/v1, the fields it uses).
type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"rules"`
}

func rulesFile(t *testing.T) string {
	return filepath.Join(chartDir(t), "files", "prometheus-rules.yaml")
}

// promtool runs the cached promtool and fails t unless it succeeds.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prombin.Promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPrometheusRules(t *testing.T) {
	out := promtool(t, ".", "check", "rules", rulesFile(t))
	if !strings.Contains(out, "SUCCESS: 11 rules found") {
		t.Errorf("promtool check rules: %s, want 11 rules", out)
	}
	out = promtool(t, "testdata", "test", "rules", "prometheus-rules.test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

func TestChartRenderPrometheusRule(t *testing.T) {
	if r := render(t); len(r.prometheusRules) != 0 {
		t.Fatalf("default renders %d PrometheusRules, want none", len(r.prometheusRules))
	}
	r := render(t, "--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=prom")
	checkCommon(t, r, false)
	if len(r.prometheusRules) != 1 {
		t.Fatalf("rendered %d PrometheusRules, want 1", len(r.prometheusRules))
	}
	pr := r.prometheusRules[0]
	if pr.Metadata.Labels["release"] != "prom" || pr.Metadata.Namespace != "udb" {
		t.Errorf("PrometheusRule metadata = %+v, want label release=prom in namespace udb", pr.Metadata)
	}
	b, err := os.ReadFile(rulesFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var plain struct {
		Groups []ruleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &plain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr.Spec.Groups, plain.Groups) {
		t.Errorf("the PrometheusRule's groups differ from %s:\n got %+v\nwant %+v", rulesFile(t), pr.Spec.Groups, plain.Groups)
	}
	// The rendered groups, as a rules file, pass promtool too.
	js, err := json.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	rendered := filepath.Join(t.TempDir(), "rendered-rules.yaml")
	if err := os.WriteFile(rendered, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := promtool(t, ".", "check", "rules", rendered); !strings.Contains(out, "SUCCESS: 11 rules found") {
		t.Errorf("promtool check rules on the PrometheusRule: %s", out)
	}
}

func TestChartRenderGrafanaDashboard(t *testing.T) {
	dashboard := func(r *rendered) []int {
		var idx []int
		for i, cm := range r.configMaps {
			if strings.HasSuffix(cm.Name, "-dashboard") {
				idx = append(idx, i)
			}
		}
		return idx
	}
	if n := dashboard(render(t)); len(n) != 0 {
		t.Fatalf("default renders %d dashboard ConfigMaps, want none", len(n))
	}
	r := render(t, "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.namespace=monitoring",
		"--set", "metrics.grafanaDashboard.annotations.grafana_folder=LAN")
	checkCommon(t, r, false)
	idx := dashboard(r)
	if len(idx) != 1 {
		t.Fatalf("rendered %d dashboard ConfigMaps, want 1", len(idx))
	}
	cm := r.configMaps[idx[0]]
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" || cm.Annotations["grafana_folder"] != "LAN" {
		t.Errorf("dashboard ConfigMap metadata = %+v, want label grafana_dashboard=1, namespace monitoring, the folder annotation", cm.ObjectMeta)
	}
	want, err := os.ReadFile(filepath.Join(chartDir(t), "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := cm.Data["udp-discovery-bridge.json"]
	if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
		t.Errorf("the ConfigMap's dashboard differs from files/grafana-dashboard.json")
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(got), &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Errorf("dashboard uid %q with %d panels", d.UID, len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}
