package chart_test

import (
	"slices"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes"
)

// The chart renders the kubernetes sink's RBAC only with the sink on: no
// Role, no RoleBinding and no API token by default; with config.sinks
// holding kubernetes, a ServiceAccount of its own, the token mounted, and a
// Role in the sink's namespace with exactly the rules the sink uses (the
// same rules the e2e test grants the bridges against a real API server),
// bound to that ServiceAccount.
func TestChartRenderKubernetesRBAC(t *testing.T) {
	def := render(t)
	if len(def.roles)+len(def.roleBindings) != 0 {
		t.Errorf("default render has %d Roles and %d RoleBindings, want none", len(def.roles), len(def.roleBindings))
	}
	if a := def.pod().AutomountServiceAccountToken; a == nil || *a {
		t.Errorf("default render: automountServiceAccountToken %v, want false", a)
	}

	r := render(t, "--set", "config.sinks={kubernetes}")
	if a := r.pod().AutomountServiceAccountToken; a == nil || !*a {
		t.Errorf("kubernetes sink: automountServiceAccountToken %v, want true", a)
	}
	if len(r.serviceAccounts) != 1 || r.pod().ServiceAccountName != r.serviceAccounts[0].Name {
		t.Fatalf("kubernetes sink: service accounts %v, pod's %q: want one of its own", r.serviceAccounts, r.pod().ServiceAccountName)
	}
	if len(r.roles) != 1 || len(r.roleBindings) != 1 {
		t.Fatalf("kubernetes sink: %d Roles, %d RoleBindings, want 1 and 1", len(r.roles), len(r.roleBindings))
	}
	role, rb := r.roles[0], r.roleBindings[0]
	if role.Namespace != "udb" || rb.Namespace != "udb" {
		t.Errorf("Role in %q, RoleBinding in %q, want the release's namespace udb", role.Namespace, rb.Namespace)
	}
	// The sink's own list of what it does (which `bridge doctor` checks).
	want := map[string][]string{}
	for _, r := range kubernetes.Rights {
		v := slices.Clone(r.Verbs)
		slices.Sort(v)
		want[r.Group+"/"+r.Resource] = v
	}
	got := map[string][]string{}
	for _, rule := range role.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				v := slices.Clone(rule.Verbs)
				slices.Sort(v)
				got[g+"/"+res] = v
			}
		}
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("Role rule %s: verbs %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Role has rules for %d resources, want %d: %v", len(got), len(want), got)
	}
	if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" ||
		rb.Subjects[0].Name != r.serviceAccounts[0].Name || rb.Subjects[0].Namespace != "udb" {
		t.Errorf("RoleBinding %+v does not bind Role %s to the pods' ServiceAccount", rb, role.Name)
	}

	// The selectorless Service, as the sink would create it, labelled for
	// the fleet (the sink attaches to it), a release object.
	var svcs []string
	for _, s := range r.services {
		svcs = append(svcs, s.Name)
		if s.Name != "django" {
			continue
		}
		if s.Spec.ClusterIP != "None" || len(s.Spec.Selector) != 0 || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].Port != 8000 ||
			s.Labels["udp-discovery-bridge.io/fleet"] != "django" || s.Namespace != "udb" {
			t.Errorf("service django: %+v", s)
		}
	}
	if !slices.Contains(svcs, "django") || slices.Contains(func() []string {
		var n []string
		for _, s := range def.services {
			n = append(n, s.Name)
		}
		return n
	}(), "django") {
		t.Errorf("the django Service: rendered %v with the sink, want it only then", svcs)
	}
	cip := render(t, "--set", "config.sinks={kubernetes}", "--set", "config.k8s_service_type=clusterip", "--set", "config.k8s_service=apps-db")
	for _, s := range cip.services {
		if s.Name == "apps-db" && s.Spec.ClusterIP != "" {
			t.Errorf("clusterip service: clusterIP %q, want one allocated", s.Spec.ClusterIP)
		}
	}

	other := render(t, "--set", "config.sinks={kubernetes,consul}", "--set", "config.k8s_namespace=apps")
	if len(other.roles) != 1 || other.roles[0].Namespace != "apps" || other.roleBindings[0].Subjects[0].Namespace != "udb" {
		t.Errorf("k8s_namespace apps: Role in %v, want apps (the ServiceAccount stays in udb)", other.roles)
	}
	off := render(t, "--set", "config.sinks={kubernetes}", "--set", "rbac.create=false")
	if len(off.roles) != 0 {
		t.Error("rbac.create=false still renders a Role")
	}
}

// With k8s_write dnsendpoint the Role also lets the sink get, create and
// server-side apply the DNSEndpoint (what `bridge doctor` checks,
// kubernetes.DNSRights); without endpointslices the chart renders no
// selectorless Service (the sink writes none).
func TestChartRenderDNSEndpointRBAC(t *testing.T) {
	for _, tc := range []struct {
		write   string
		service bool
	}{{"{endpointslices,dnsendpoint}", true}, {"{dnsendpoint}", false}} {
		r := render(t, "--set", "config.sinks={kubernetes}", "--set", "config.k8s_write="+tc.write, "--set", "config.k8s_dns_name=django.lab.test")
		if len(r.roles) != 1 {
			t.Fatalf("k8s_write %s: %d Roles, want 1", tc.write, len(r.roles))
		}
		var verbs []string
		for _, rule := range r.roles[0].Rules {
			if slices.Contains(rule.APIGroups, kubernetes.DNSRights.Group) && slices.Contains(rule.Resources, kubernetes.DNSRights.Resource) {
				verbs = slices.Sorted(slices.Values(rule.Verbs))
			}
		}
		if want := slices.Sorted(slices.Values(kubernetes.DNSRights.Verbs)); !slices.Equal(verbs, want) {
			t.Errorf("k8s_write %s: dnsendpoints verbs %v, want %v", tc.write, verbs, want)
		}
		found := false
		for _, s := range r.services {
			found = found || s.Name == "django"
		}
		if found != tc.service {
			t.Errorf("k8s_write %s: the selectorless Service rendered %v, want %v", tc.write, found, tc.service)
		}
	}
	if r := render(t, "--set", "config.sinks={kubernetes}"); len(r.roles) == 1 {
		for _, rule := range r.roles[0].Rules {
			if slices.Contains(rule.Resources, "dnsendpoints") {
				t.Errorf("default k8s_write: the Role has a dnsendpoints rule: %v", rule)
			}
		}
	}
}
