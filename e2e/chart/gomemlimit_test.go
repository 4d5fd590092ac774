package chart_test

import (
	"strings"
	"testing"
)

// TestChartRenderGoMemLimit: GOMEMLIMIT is 90% of the container's memory
// limit in bytes (rounded down), goMemLimit overrides it, and it is absent
// without a limit.
func TestChartRenderGoMemLimit(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" when GOMEMLIMIT must be absent
	}{
		{"default limit 128Mi", nil, "120795955"}, // 134217728 * 0.9
		{"128Mi", []string{"--set", "resources.limits.memory=128Mi"}, "120795955"},
		{"1Gi", []string{"--set", "resources.limits.memory=1Gi"}, "966367641"}, // 1073741824 * 0.9 = 966367641.6
		{"1.5Gi", []string{"--set", "resources.limits.memory=1.5Gi"}, "1449551462"},
		{"512Ki", []string{"--set", "resources.limits.memory=512Ki"}, "471859"}, // 524288 * 0.9 = 471859.2
		{"decimal M", []string{"--set", "resources.limits.memory=500M"}, "450000000"},
		{"decimal G", []string{"--set", "resources.limits.memory=2G"}, "1800000000"},
		{"decimal k", []string{"--set", "resources.limits.memory=100000k"}, "90000000"},
		{"plain bytes, a number", []string{"--set", "resources.limits.memory=134217728"}, "120795955"},
		{"plain bytes, a string", []string{"--set-string", "resources.limits.memory=1000"}, "900"},
		{"no memory limit", []string{"--set", "resources.limits.memory=null"}, ""},
		{"no limits", []string{"--set", "resources.limits=null"}, ""},
		{"no resources", []string{"--set", "resources=null"}, ""},
		{"explicit value", []string{"--set", "goMemLimit=100MiB"}, "100MiB"},
		{"explicit value without a limit", []string{"--set", "resources=null", "--set", "goMemLimit=100MiB"}, "100MiB"},
		{"off", []string{"--set", "goMemLimit=off"}, "off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := render(t, tt.args...)
			e := r.env(t, "GOMEMLIMIT")
			switch {
			case tt.want == "" && e != nil:
				t.Errorf("GOMEMLIMIT=%q rendered, want none", e.Value)
			case tt.want != "" && e == nil:
				t.Errorf("GOMEMLIMIT not rendered, want %q", tt.want)
			case tt.want != "" && r.envValue(t, "GOMEMLIMIT") != tt.want:
				t.Errorf("GOMEMLIMIT=%q, want %q", e.Value, tt.want)
			}
		})
	}
}

// TestChartRenderGoMemLimitRefuses: a memory limit auto mode cannot read,
// and a goMemLimit Go would not read, fail the render.
func TestChartRenderGoMemLimitRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "resources.limits.memory=12Xi"}, `resources.limits.memory "12Xi"`},
		{[]string{"--set", "resources.limits.memory=1e9"}, `resources.limits.memory "1e9"`},
		{[]string{"--set", "resources.limits.memory=100000K"}, `resources.limits.memory "100000K"`}, // Kubernetes' kilo is k
		{[]string{"--set", "goMemLimit=100Mi"}, "goMemLimit"},                                       // Go reads MiB, not Kubernetes' Mi
	} {
		_, errOut, err := helm(t, append([]string{"template", "r", chartDir(t)}, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("helm template %v: err %v, stderr %q; want a failure saying %q", tc.args, err, errOut, tc.want)
		}
	}
}
