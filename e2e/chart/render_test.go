package chart_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The prometheus-operator monitoring.coreos.com/v1 fields the chart renders
// (a subset of the CRDs' schemas: a field outside it fails the decoding).
type monitorEndpoint struct {
	Port          string `json:"port"`
	Path          string `json:"path,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector namespaceSelector    `json:"namespaceSelector"`
		Endpoints         []monitorEndpoint    `json:"endpoints"`
	} `json:"spec"`
}

type podMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector            metav1.LabelSelector `json:"selector"`
		NamespaceSelector   namespaceSelector    `json:"namespaceSelector"`
		PodMetricsEndpoints []monitorEndpoint    `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// rendered holds every document of one `helm template`, each decoded
// strictly into its API type.
type rendered struct {
	raw             [][]byte
	daemonSets      []appsv1.DaemonSet
	secrets         []corev1.Secret
	serviceAccounts []corev1.ServiceAccount
	configMaps      []corev1.ConfigMap
	services        []corev1.Service
	serviceMonitors []serviceMonitor
	podMonitors     []podMonitor
	prometheusRules []prometheusRule
	roles           []rbacv1.Role
	roleBindings    []rbacv1.RoleBinding
	// CustomResourceDefinitions, decoded loosely: the e2e module has no
	// apiextensions types (dnsendpoint_crd_test.go compares them whole).
	crds []map[string]any
}

// render templates the chart and decodes every document strictly: an
// unknown kind, a wrong apiVersion or a field the API type lacks fails t.
func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	r := &rendered{}
	for _, js := range splitDocs(t, template(t, args...)) {
		r.raw = append(r.raw, js)
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Fatalf("document without apiVersion/kind: %v\n%s", err, js)
		}
		var target any
		want := ""
		switch tm.Kind {
		case "DaemonSet":
			r.daemonSets = append(r.daemonSets, appsv1.DaemonSet{})
			target, want = &r.daemonSets[len(r.daemonSets)-1], "apps/v1"
		case "Secret":
			r.secrets = append(r.secrets, corev1.Secret{})
			target, want = &r.secrets[len(r.secrets)-1], "v1"
		case "ServiceAccount":
			r.serviceAccounts = append(r.serviceAccounts, corev1.ServiceAccount{})
			target, want = &r.serviceAccounts[len(r.serviceAccounts)-1], "v1"
		case "ConfigMap":
			r.configMaps = append(r.configMaps, corev1.ConfigMap{})
			target, want = &r.configMaps[len(r.configMaps)-1], "v1"
		case "Service":
			r.services = append(r.services, corev1.Service{})
			target, want = &r.services[len(r.services)-1], "v1"
		case "ServiceMonitor":
			r.serviceMonitors = append(r.serviceMonitors, serviceMonitor{})
			target, want = &r.serviceMonitors[len(r.serviceMonitors)-1], "monitoring.coreos.com/v1"
		case "PodMonitor":
			r.podMonitors = append(r.podMonitors, podMonitor{})
			target, want = &r.podMonitors[len(r.podMonitors)-1], "monitoring.coreos.com/v1"
		case "PrometheusRule":
			r.prometheusRules = append(r.prometheusRules, prometheusRule{})
			target, want = &r.prometheusRules[len(r.prometheusRules)-1], "monitoring.coreos.com/v1"
		case "Role":
			r.roles = append(r.roles, rbacv1.Role{})
			target, want = &r.roles[len(r.roles)-1], "rbac.authorization.k8s.io/v1"
		case "RoleBinding":
			r.roleBindings = append(r.roleBindings, rbacv1.RoleBinding{})
			target, want = &r.roleBindings[len(r.roleBindings)-1], "rbac.authorization.k8s.io/v1"
		case "CustomResourceDefinition":
			r.crds = append(r.crds, nil)
			if tm.APIVersion != "apiextensions.k8s.io/v1" {
				t.Fatalf("CustomResourceDefinition has apiVersion %q, want apiextensions.k8s.io/v1", tm.APIVersion)
			}
			if err := json.Unmarshal(js, &r.crds[len(r.crds)-1]); err != nil {
				t.Fatalf("CustomResourceDefinition: %v\n%s", err, js)
			}
			continue
		default:
			t.Fatalf("unexpected kind %q (%s) in the rendered chart", tm.Kind, tm.APIVersion)
		}
		if tm.APIVersion != want {
			t.Fatalf("%s has apiVersion %q, want %q", tm.Kind, tm.APIVersion, want)
		}
		if err := decodeStrict(js, target); err != nil {
			t.Fatalf("%s does not decode strictly into its API type: %v\n%s", tm.Kind, err, js)
		}
	}
	if len(r.daemonSets) != 1 {
		t.Fatalf("rendered %d DaemonSets, want 1", len(r.daemonSets))
	}
	return r
}

func (r *rendered) ds() *appsv1.DaemonSet { return &r.daemonSets[0] }
func (r *rendered) pod() *corev1.PodSpec  { return &r.daemonSets[0].Spec.Template.Spec }
func (r *rendered) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := r.pod().Containers
	if len(cs) != 1 {
		t.Fatalf("pod has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

// env returns the container's variable name (nil when absent).
func (r *rendered) env(t *testing.T, name string) *corev1.EnvVar {
	t.Helper()
	c := r.container(t)
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func (r *rendered) envValue(t *testing.T, name string) string {
	t.Helper()
	e := r.env(t, name)
	if e == nil {
		t.Fatalf("env %s not rendered", name)
	}
	if e.ValueFrom != nil {
		t.Fatalf("env %s comes from %+v, want a plain value", name, e.ValueFrom)
	}
	return e.Value
}

func (r *rendered) envIndex(t *testing.T, name string) int {
	t.Helper()
	return slices.IndexFunc(r.container(t).Env, func(e corev1.EnvVar) bool { return e.Name == name })
}

func (r *rendered) volume(name string) *corev1.Volume {
	for i, v := range r.pod().Volumes {
		if v.Name == name {
			return &r.pod().Volumes[i]
		}
	}
	return nil
}

func (r *rendered) mount(t *testing.T, name string) *corev1.VolumeMount {
	for i, m := range r.container(t).VolumeMounts {
		if m.Name == name {
			return &r.container(t).VolumeMounts[i]
		}
	}
	return nil
}

// checkCommon asserts what every rendering must hold: host network, the
// restricted security context, the bridge ID from the node name, probes on
// the named port, secrets never as plain values, and every bridge variable
// a real key's.
func checkCommon(t *testing.T, r *rendered, netAdmin bool) {
	t.Helper()
	ds, pod, c := r.ds(), r.pod(), r.container(t)

	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType || ds.Spec.UpdateStrategy.RollingUpdate == nil ||
		ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
		t.Errorf("updateStrategy = %+v, want RollingUpdate with maxUnavailable", ds.Spec.UpdateStrategy)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector label %s=%s not on the pod template", k, v)
		}
	}
	if !pod.HostNetwork {
		t.Error("hostNetwork is not true")
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy = %q, want ClusterFirstWithHostNet", pod.DNSPolicy)
	}
	if pod.AutomountServiceAccountToken == nil {
		t.Error("automountServiceAccountToken not rendered")
	}

	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want non-root 65532:65532 with RuntimeDefault seccomp", psc)
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("container securityContext missing")
	}
	wantUser, wantNonRoot := int64(65532), true
	if netAdmin {
		// NET_ADMIN reaches the effective set of a root process only.
		wantUser, wantNonRoot = 0, false
	}
	if sc.RunAsNonRoot == nil || *sc.RunAsNonRoot != wantNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != wantUser || sc.RunAsGroup == nil || *sc.RunAsGroup != 65532 {
		t.Errorf("container runs as %v:%v (non-root %v), want %d:65532 non-root %v", sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot, wantUser, wantNonRoot)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("container is privileged")
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities = %+v, want drop [ALL]", sc.Capabilities)
	} else {
		var want []corev1.Capability
		if netAdmin {
			want = []corev1.Capability{"NET_ADMIN"}
		}
		if !slices.Equal(sc.Capabilities.Add, want) {
			t.Errorf("capabilities.add = %v, want %v", sc.Capabilities.Add, want)
		}
	}

	if !slices.Equal(c.Args, []string{"run"}) && (len(c.Args) == 0 || c.Args[0] != "run") {
		t.Errorf("args = %v, want run first", c.Args)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v, want one TCP port named metrics", c.Ports)
	}
	if got, want := r.envValue(t, "DISCOVERY_CLIENT_METRICS_ADDR"), ":"+itoa(c.Ports[0].ContainerPort); got != want {
		t.Errorf("DISCOVERY_CLIENT_METRICS_ADDR = %q, want %q (the metrics port)", got, want)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe = %+v, want an HTTP GET", p.name, p.probe)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != intstr.FromString("metrics") {
			t.Errorf("%s probe GET %s on %v, want %s on the named port metrics", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}

	id := r.env(t, "DISCOVERY_CLIENT_BRIDGE_ID")
	if id == nil || id.Value != "" || id.ValueFrom == nil || id.ValueFrom.FieldRef == nil || id.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("DISCOVERY_CLIENT_BRIDGE_ID = %+v, want valueFrom fieldRef spec.nodeName", id)
	}

	keys := exampleKeys(t)
	known := map[string]bool{}
	for _, k := range keys {
		for _, e := range k.env {
			known[e] = true
		}
	}
	for _, e := range c.Env {
		switch e.Name {
		case "DISCOVERY_CLIENT_SECRET_KEY", "DISCOVERY_SECRET_KEY", "CONSUL_HTTP_TOKEN":
			t.Errorf("secret rendered as an environment variable: %s", e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("env %s reads a Secret into the environment; secrets must be files", e.Name)
		}
		if bridgeVar(e.Name) && !known[e.Name] {
			t.Errorf("env %s is not a variable of any key in bridge.example.yaml", e.Name)
		}
	}
	// Secret volumes are read-only files.
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			continue
		}
		m := r.mount(t, v.Name)
		if m == nil || !m.ReadOnly {
			t.Errorf("secret volume %s is not mounted read-only: %+v", v.Name, m)
		}
	}
}

func bridgeVar(name string) bool {
	if name == "KUBECONFIG" { // the kubernetes sink's kubeconfig key
		return true
	}
	for _, p := range []string{"DISCOVERY_", "CONSUL_", "BRIDGE_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func itoa(i int32) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// checkSecretFile asserts that the secret of volume vol (Secret secretName,
// key key) is mounted and that env names the file.
func checkSecretFile(t *testing.T, r *rendered, vol, secretName, key, env string) {
	t.Helper()
	v := r.volume(vol)
	if v == nil || v.Secret == nil {
		t.Fatalf("no secret volume %s", vol)
	}
	if v.Secret.SecretName != secretName || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != key {
		t.Errorf("volume %s = %+v, want Secret %s item %s", vol, v.Secret, secretName, key)
	}
	m := r.mount(t, vol)
	if m == nil {
		t.Fatalf("volume %s not mounted", vol)
	}
	if got, want := r.envValue(t, env), m.MountPath+"/"+v.Secret.Items[0].Path; got != want {
		t.Errorf("%s = %q, want the mounted file %q", env, got, want)
	}
}

func TestChartLint(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--set", "config.consul_mode=agent"},
		{"--set", "netAdmin=true", "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true"},
	} {
		out, errOut, err := helm(t, append([]string{"lint", "--strict", chartDir(t)}, args...)...)
		if err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s%s", args, err, out, errOut)
		}
	}
}

func TestChartRenderDefault(t *testing.T) {
	r := render(t)
	checkCommon(t, r, false)
	if len(r.secrets)+len(r.serviceAccounts)+len(r.services)+len(r.serviceMonitors)+len(r.podMonitors) != 0 {
		t.Errorf("default rendering has more than the DaemonSet: %d documents", len(r.raw))
	}
	ds, pod := r.ds(), r.pod()
	if got := ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; *got != intstr.FromInt32(1) {
		t.Errorf("maxUnavailable = %v, want 1", got.String())
	}
	if *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is true by default")
	}
	if pod.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName = %q, want default", pod.ServiceAccountName)
	}
	c := r.container(t)
	if c.Image != "udp-discovery-bridge:0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q pull %q, want udp-discovery-bridge:<appVersion> IfNotPresent", c.Image, c.ImagePullPolicy)
	}
	if c.Ports[0].ContainerPort != 9108 {
		t.Errorf("metrics port %d, want 9108", c.Ports[0].ContainerPort)
	}
	for name, want := range map[string]string{
		"DISCOVERY_CLIENT_CONSUL_MODE": "catalog",
		"CONSUL_HTTP_ADDR":             "consul-server.consul.svc:8500",
		"DISCOVERY_CLIENT_SINKS":       "consul",
		"DISCOVERY_CLIENT_ON_EXIT":     "deregister",
		"BRIDGE_LOG_FORMAT":            "json",
	} {
		if got := r.envValue(t, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"HOST_IP", "DISCOVERY_CLIENT_INTERFACES_WHITELIST", "DISCOVERY_CLIENT_SECRET_KEY_FILE", "CONSUL_HTTP_TOKEN_FILE"} {
		if r.env(t, name) != nil {
			t.Errorf("%s rendered by default", name)
		}
	}
	if len(pod.Volumes) != 0 || len(c.VolumeMounts) != 0 {
		t.Errorf("volumes %v mounts %v by default, want none", pod.Volumes, c.VolumeMounts)
	}
}

func TestChartRenderAgentMode(t *testing.T) {
	r := render(t, "--set", "config.consul_mode=agent", "--set", "consulAgent.port=8501")
	checkCommon(t, r, false)
	hostIP := r.env(t, "HOST_IP")
	if hostIP == nil || hostIP.ValueFrom == nil || hostIP.ValueFrom.FieldRef == nil || hostIP.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Fatalf("HOST_IP = %+v, want valueFrom fieldRef status.hostIP", hostIP)
	}
	if got := r.envValue(t, "CONSUL_HTTP_ADDR"); got != "$(HOST_IP):8501" {
		t.Errorf("CONSUL_HTTP_ADDR = %q, want $(HOST_IP):8501", got)
	}
	// $(VAR) expands only variables defined earlier in the list.
	if r.envIndex(t, "HOST_IP") > r.envIndex(t, "CONSUL_HTTP_ADDR") {
		t.Error("HOST_IP is defined after CONSUL_HTTP_ADDR, which refers to it")
	}
	if got := r.envValue(t, "DISCOVERY_CLIENT_CONSUL_MODE"); got != "agent" {
		t.Errorf("DISCOVERY_CLIENT_CONSUL_MODE = %q, want agent", got)
	}

	r = render(t, "--set", "config.consul_mode=agent", "--set", "consulAgent.useHostIP=false", "--set", "config.consul_addr=127.0.0.1:8500")
	checkCommon(t, r, false)
	if r.env(t, "HOST_IP") != nil || r.envValue(t, "CONSUL_HTTP_ADDR") != "127.0.0.1:8500" {
		t.Error("agent mode without useHostIP does not use config.consul_addr")
	}
}

func TestChartRenderExistingSecrets(t *testing.T) {
	r := render(t, "--set", "config.encryption_enabled=true",
		"--set", "secretKey.existingSecret=fernet", "--set", "secretKey.key=key",
		"--set", "consulToken.existingSecret=consul-acl", "--set", "consulToken.key=acl-token")
	checkCommon(t, r, false)
	if len(r.secrets) != 0 {
		t.Errorf("the chart made %d Secrets though existing ones were named", len(r.secrets))
	}
	checkSecretFile(t, r, "secret-key", "fernet", "key", "DISCOVERY_CLIENT_SECRET_KEY_FILE")
	checkSecretFile(t, r, "consul-token", "consul-acl", "acl-token", "CONSUL_HTTP_TOKEN_FILE")
	if got := r.envValue(t, "DISCOVERY_CLIENT_ENCRYPTION_ENABLED"); got != "true" {
		t.Errorf("DISCOVERY_CLIENT_ENCRYPTION_ENABLED = %q, want true", got)
	}
}

func TestChartRenderChartSecret(t *testing.T) {
	const key, token = "cw_0nGl0FHMuZ8yb7NyyWaznM3-cDmZf1H3kpQcxuXE=", "3f0b5c57-0c3a-4d1e-9a8e-token-value"
	r := render(t, "--set", "config.encryption_enabled=true", "--set", "secretKey.value="+key, "--set", "consulToken.value="+token)
	checkCommon(t, r, false)
	if len(r.secrets) != 1 {
		t.Fatalf("rendered %d Secrets, want 1", len(r.secrets))
	}
	s := r.secrets[0]
	if string(s.Data["secret-key"]) != key || string(s.Data["token"]) != token {
		t.Errorf("Secret data = %q, want the given key and token under secret-key and token", s.Data)
	}
	checkSecretFile(t, r, "secret-key", s.Name, "secret-key", "DISCOVERY_CLIENT_SECRET_KEY_FILE")
	checkSecretFile(t, r, "consul-token", s.Name, "token", "CONSUL_HTTP_TOKEN_FILE")
	dsJSON, _ := json.Marshal(r.ds())
	if strings.Contains(string(dsJSON), key) || strings.Contains(string(dsJSON), token) {
		t.Error("a secret value appears in the DaemonSet")
	}
	if r.ds().Spec.Template.Annotations["checksum/secret"] == "" {
		t.Error("no checksum/secret annotation: a changed secret would not roll the pods")
	}
}

// TestChartRenderFernetKeyOnlyWithEncryption checks that a configured
// Fernet key is neither put in the chart's Secret nor mounted while
// encryption is off, and the Consul token still is.
func TestChartRenderFernetKeyOnlyWithEncryption(t *testing.T) {
	const key, token = "cw_0nGl0FHMuZ8yb7NyyWaznM3-cDmZf1H3kpQcxuXE=", "3f0b5c57-0c3a-4d1e-9a8e-token-value"
	r := render(t, "--set", "secretKey.value="+key, "--set", "consulToken.value="+token)
	checkCommon(t, r, false)
	if len(r.secrets) != 1 {
		t.Fatalf("rendered %d Secrets, want 1 (the token's)", len(r.secrets))
	}
	if _, ok := r.secrets[0].Data["secret-key"]; ok {
		t.Error("the chart's Secret holds the Fernet key though encryption is off")
	}
	if r.volume("secret-key") != nil || r.env(t, "DISCOVERY_CLIENT_SECRET_KEY_FILE") != nil {
		t.Error("the Fernet key is mounted though encryption is off")
	}
	checkSecretFile(t, r, "consul-token", r.secrets[0].Name, "token", "CONSUL_HTTP_TOKEN_FILE")

	r = render(t, "--set", "secretKey.existingSecret=fernet")
	checkCommon(t, r, false)
	if r.volume("secret-key") != nil || r.env(t, "DISCOVERY_CLIENT_SECRET_KEY_FILE") != nil {
		t.Error("an existing Fernet key Secret is mounted though encryption is off")
	}
	if len(r.secrets) != 0 || r.pod().Volumes != nil {
		t.Errorf("with encryption off and no token: %d Secrets, volumes %v; want none", len(r.secrets), r.pod().Volumes)
	}
}

func TestChartRenderMonitors(t *testing.T) {
	r := render(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.interval=30s",
		"--set", "metrics.serviceMonitor.labels.release=prom", "--set", "metrics.podMonitor.enabled=true", "--set", "metrics.port=9200")
	checkCommon(t, r, false)
	pod := r.ds().Spec.Template.Labels
	if r.container(t).Ports[0].ContainerPort != 9200 {
		t.Errorf("metrics port %d, want 9200", r.container(t).Ports[0].ContainerPort)
	}
	if len(r.services) != 1 || len(r.serviceMonitors) != 1 || len(r.podMonitors) != 1 {
		t.Fatalf("rendered %d Services, %d ServiceMonitors, %d PodMonitors; want 1 each", len(r.services), len(r.serviceMonitors), len(r.podMonitors))
	}
	svc := r.services[0]
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" ||
		svc.Spec.Ports[0].Port != 9200 || svc.Spec.Ports[0].TargetPort != intstr.FromString("metrics") {
		t.Errorf("metrics Service spec = %+v, want headless, port metrics 9200 -> named port metrics", svc.Spec)
	}
	for k, v := range svc.Spec.Selector {
		if pod[k] != v {
			t.Errorf("Service selector %s=%s does not select the pods", k, v)
		}
	}
	sm := r.serviceMonitors[0]
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not select the Service", k, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Interval != "30s" || sm.Metadata.Labels["release"] != "prom" {
		t.Errorf("ServiceMonitor = %+v, want port metrics, interval 30s, label release=prom", sm)
	}
	pm := r.podMonitors[0]
	for k, v := range pm.Spec.Selector.MatchLabels {
		if pod[k] != v {
			t.Errorf("PodMonitor selector %s=%s does not select the pods", k, v)
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
		t.Errorf("PodMonitor endpoints = %+v, want the port metrics", pm.Spec.PodMetricsEndpoints)
	}
}

func TestChartRenderNetAdmin(t *testing.T) {
	r := render(t, "--set", "netAdmin=true")
	checkCommon(t, r, true)
	// NET_ADMIN is the only capability even if someone adds others to securityContext.
	r = render(t, "--set", "netAdmin=false", "--set", "securityContext.capabilities.add={SYS_ADMIN}")
	checkCommon(t, r, false)
}

func TestChartRenderOverrides(t *testing.T) {
	vals := writeValues(t, `
image: {repository: registry.example/udb, tag: "1.2.3", pullPolicy: Never}
updateStrategy: {rollingUpdate: {maxUnavailable: "25%"}}
config:
  interfaces_whitelist: [eth1, eth2]
  consul_tags: [lab, floor-2]
  scan_cidrs: [10.1.0.0/22]
  timeout: 0.5
  max_replies: 2000000
  sinks: [consul, stdout]
  consul_check: tcp
serviceAccount: {create: true}
priorityClassName: system-node-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{operator: Exists}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: lab, operator: In, values: ["yes"]}]}]
extraArgs: [--log-level, debug]
extraEnv: [{name: GOMAXPROCS, value: "1"}]
extraVolumes: [{name: ca, configMap: {name: consul-ca}}]
extraVolumeMounts: [{name: ca, mountPath: /etc/consul-ca, readOnly: true}]
resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
`)
	r := render(t, "-f", vals)
	checkCommon(t, r, false)
	ds, pod, c := r.ds(), r.pod(), r.container(t)
	if got := ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; *got != intstr.FromString("25%") {
		t.Errorf("maxUnavailable = %v, want 25%%", got.String())
	}
	if c.Image != "registry.example/udb:1.2.3" || c.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
	}
	for name, want := range map[string]string{
		"DISCOVERY_CLIENT_INTERFACES_WHITELIST": "eth1,eth2",
		"DISCOVERY_CLIENT_CONSUL_TAGS":          "lab,floor-2",
		"DISCOVERY_CLIENT_SCAN_CIDRS":           "10.1.0.0/22",
		"DISCOVERY_CLIENT_TIMEOUT":              "0.5",
		"DISCOVERY_CLIENT_MAX_REPLIES":          "2000000",
		"DISCOVERY_CLIENT_SINKS":                "consul,stdout",
		"DISCOVERY_CLIENT_CONSUL_CHECK":         "tcp",
		"GOMAXPROCS":                            "1",
	} {
		if got := r.envValue(t, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if !slices.Equal(c.Args, []string{"run", "--log-level", "debug"}) {
		t.Errorf("args = %v", c.Args)
	}
	if len(r.serviceAccounts) != 1 || pod.ServiceAccountName != r.serviceAccounts[0].Name {
		t.Errorf("ServiceAccount not created or not used (%d, %q)", len(r.serviceAccounts), pod.ServiceAccountName)
	} else if a := r.serviceAccounts[0].AutomountServiceAccountToken; a == nil || *a {
		t.Error("created ServiceAccount automounts its token")
	}
	if pod.PriorityClassName != "system-node-critical" || pod.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(pod.Tolerations) != 1 || pod.Affinity == nil || pod.Affinity.NodeAffinity == nil {
		t.Errorf("scheduling fields not rendered: %+v", pod)
	}
	if r.volume("ca") == nil || r.mount(t, "ca") == nil {
		t.Error("extra volume or mount missing")
	}
	if c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("memory limit %s, want 256Mi", c.Resources.Limits.Memory())
	}
}

// TestChartRenderRefuses checks the template-time checks the schema cannot
// express.
func TestChartRenderRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "config.encryption_enabled=true"}, "needs a Fernet key"},
		{[]string{"--set", "secretKey.existingSecret=a", "--set", "secretKey.value=b"}, "not both"},
		{[]string{"--set", "secretKey.value=a", "--set", "consulToken.value=b", "--set", "consulToken.key=secret-key"}, "must differ"},
	} {
		_, errOut, err := helm(t, append([]string{"template", "r", chartDir(t)}, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("helm template %v: err %v, stderr %q; want a failure saying %q", tc.args, err, errOut, tc.want)
		}
	}
}
