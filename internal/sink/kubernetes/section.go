package kubernetes

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Service types of k8s_service_type.
const (
	TypeHeadless  = "headless"
	TypeClusterIP = "clusterip"
)

// Limits of the settings.
const (
	DefaultMaxPerSlice = 100
	MaxPerSliceLimit   = 1000 // Kubernetes' limit of endpoints in one slice
)

// Config configures the kubernetes sink.
type Config struct {
	// Kubeconfig is the kubeconfig file ("": in-cluster).
	Kubeconfig string
	// Namespace of every object ("": the kubeconfig context's or the
	// service account's, else "default").
	Namespace string
	// Service, PortName, ServicePort, Headless describe the Service.
	Service     string
	PortName    string
	ServicePort int
	Headless    bool
	// MaxPerSlice bounds the endpoints of one slice.
	MaxPerSlice int
	// NoSlices: the leader writes no Service and no EndpointSlices
	// (k8s_write without endpointslices); the zero Config writes them.
	NoSlices bool
	// DNS is the DNSEndpoint the leader writes (k8s_write dnsendpoint);
	// nil: none.
	DNS *DNSConfig
	// DeregisterAfter: an endpoint no live bridge observes goes this long
	// after it turned unobserved (terminating). One that is observed but
	// not ready (its app check pending or failing) is never removed.
	DeregisterAfter time.Duration
	// LeaseDuration is the leader Lease's and every bridge Lease's
	// duration; they are renewed every third of it.
	LeaseDuration time.Duration
	// Resync is how often the leader re-reads the slices.
	Resync time.Duration
	// BridgeID and Segment are this bridge's identity and LAN segment
	// (the keys bridge_id and segment, shared with the Consul sink).
	BridgeID, Segment string
	// Deregister: on Close, delete this bridge's Lease and observation.
	Deregister bool
	// Round is interval + timeout; StartupGrace the leader's hold.
	Round, StartupGrace time.Duration
	// Guard is the fleet's removal guard, from the core's guard keys.
	Guard fleet.GuardConfig
	Once  bool
	Clock clock.Clock
}

// Section is the kubernetes sink's part of the configuration.
type Section struct {
}

// Factory registers the kubernetes sink.
func Factory() sink.Factory {
	return sink.NewFactory("kubernetes", &Section{}, build, runDoctor)
}

// Keys implements config.Section.
func (s *Section) Keys() []config.Key {
	const cat = "Kubernetes sink"
	return []config.Key{
		{Name: "kubeconfig", Flag: "kubeconfig", Env: []string{"KUBECONFIG"}, Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: kubeconfig file (its current context) for use outside a cluster (empty: in-cluster service account, whose token is re-read on every request)"},
		{Name: "k8s_namespace", Flag: "k8s-namespace", Env: []string{"DISCOVERY_CLIENT_K8S_NAMESPACE"}, Group: config.GroupRun, Category: cat,
			Pattern: dnsLabel, PatternHint: dnsLabelHint, MaxLen: 63, Hint: "(a Kubernetes namespace)",
			Usage: "kubernetes sink: namespace of the Service, its EndpointSlices, the Leases and the observation ConfigMaps (default: the kubeconfig context's or the service account's, else default)"},
		{Name: "k8s_service", Flag: "k8s-service", Env: []string{"DISCOVERY_CLIENT_K8S_SERVICE"}, Default: "django", NonEmpty: true, Group: config.GroupRun, Category: cat,
			Pattern: dnsLabel, PatternHint: dnsLabelHint, MaxLen: maxServiceName, Hint: "(the slices are named <service>-<port>-<n>)",
			Usage: "kubernetes sink: name of the selectorless Service (created if missing, owned by the fleet); it also names the fleet's Leases and ConfigMaps"},
		{Name: "k8s_port_name", Flag: "k8s-port-name", Env: []string{"DISCOVERY_CLIENT_K8S_PORT_NAME"}, Default: "http", NonEmpty: true, Group: config.GroupRun, Category: cat,
			Pattern: dnsLabel, PatternHint: dnsLabelHint, MaxLen: maxPortName, Hint: "(a Kubernetes port name)",
			Usage: "kubernetes sink: name of the Service's port and of every slice's port (SRV records _<name>._tcp)"},
		{Name: "k8s_service_port", Flag: "k8s-service-port", Env: []string{"DISCOVERY_CLIENT_K8S_SERVICE_PORT"}, Default: "8000", Kind: config.KindInt, Min: "1", Max: "65535", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: the Service's port number (what a ClusterIP Service listens on; each slice carries its servers' own port)"},
		{Name: "k8s_service_type", Flag: "k8s-service-type", Env: []string{"DISCOVERY_CLIENT_K8S_SERVICE_TYPE"}, Default: TypeHeadless, OneOf: []string{TypeHeadless, TypeClusterIP}, Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: headless (DNS answers the servers' addresses) or clusterip (a virtual IP kube-proxy balances over them)"},
		{Name: "k8s_max_endpoints_per_slice", Flag: "k8s-max-endpoints-per-slice", Env: []string{"DISCOVERY_CLIENT_K8S_MAX_ENDPOINTS_PER_SLICE"}, Default: strconv.Itoa(DefaultMaxPerSlice), Kind: config.KindInt, Min: "1", Max: strconv.Itoa(MaxPerSliceLimit), Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: endpoints in one EndpointSlice at most (1..1000)"},
		{Name: "k8s_deregister_after", Flag: "k8s-deregister-after", Env: []string{"DISCOVERY_CLIENT_K8S_DEREGISTER_AFTER"}, Default: "1m", Kind: config.KindDuration, Min: "1s", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: an endpoint no live bridge observes turns ready: false, terminating: true at once and is removed this long after (one whose app check fails is kept, ready: false)"},
		{Name: "k8s_lease_duration", Flag: "k8s-lease-duration", Env: []string{"DISCOVERY_CLIENT_K8S_LEASE_DURATION"}, Default: "15s", Kind: config.KindDuration, Min: "3s", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: duration of the leader Lease and of each bridge's own Lease, renewed every third of it; a standby takes over about this long after the leader dies"},
		{Name: "k8s_write", Flag: "k8s-write", Env: []string{"DISCOVERY_CLIENT_K8S_WRITE"}, Kind: config.KindList, Default: WriteSlices, NonEmpty: true, Unique: true, OneOf: []string{WriteSlices, WriteDNSEndpoint}, Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: what the fleet's leader writes: endpointslices (a selectorless Service and its EndpointSlices: cluster DNS, kube-proxy), dnsendpoint (an external-dns DNSEndpoint of the ready servers, k8s_dns_name: external-dns, k8s_gateway, k8gb; its CRD must be installed), or both (comma-separated)"},
		{Name: "k8s_dns_name", Flag: "k8s-dns-name", Env: []string{"DISCOVERY_CLIENT_K8S_DNS_NAME"}, Group: config.GroupRun, Category: cat,
			Pattern: dnsName, PatternHint: dnsNameHint, MaxLen: maxDNSName, Hint: "(a DNS name, e.g. django.lab.example.com)",
			Usage: "kubernetes sink, k8s_write dnsendpoint: the DNS name whose A records are the ready servers' addresses (required with dnsendpoint)"},
		{Name: "k8s_dnsendpoint_name", Flag: "k8s-dnsendpoint-name", Env: []string{"DISCOVERY_CLIENT_K8S_DNSENDPOINT_NAME"}, Group: config.GroupRun, Category: cat,
			Pattern: dnsLabel, PatternHint: dnsLabelHint, MaxLen: 63, Hint: "(a Kubernetes object name)",
			Usage: "kubernetes sink, k8s_write dnsendpoint: name of the DNSEndpoint (default: k8s_service), in k8s_namespace, labelled " + LabelFleet + "=<k8s_service>"},
		{Name: "k8s_dns_ttl", Flag: "k8s-dns-ttl", Env: []string{"DISCOVERY_CLIENT_K8S_DNS_TTL"}, Default: "30s", Kind: config.KindDuration, Min: "0s", Max: "24h", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink, k8s_write dnsendpoint: the records' TTL, whole seconds (0: the DNS provider's default)"},
		{Name: "k8s_dns_srv", Flag: "k8s-dns-srv", Env: []string{"DISCOVERY_CLIENT_K8S_DNS_SRV"}, Kind: config.KindBool, Default: "false", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink, k8s_write dnsendpoint: also an A record per ready server, <a-b-c-d>.<k8s_dns_name>, and the SRV record _<k8s_port_name>._tcp.<k8s_dns_name> naming each with its port"},
		{Name: "k8s_resync", Flag: "k8s-resync", Env: []string{"DISCOVERY_CLIENT_K8S_RESYNC"}, Default: "1m", Kind: config.KindDuration, Min: "1s", Group: config.GroupRun, Category: cat,
			Usage: "kubernetes sink: how often the leader re-reads the EndpointSlices (changes made behind its back are undone then)"},
	}
}

// Load implements sink.Section. bridge_id, segment and on_exit are core
// keys (Reader.Core).
func (s *Section) Load(r *config.Reader) Config {
	c := Config{
		Kubeconfig:      r.String("kubeconfig"),
		Namespace:       r.String("k8s_namespace"),
		Service:         r.String("k8s_service"),
		PortName:        r.String("k8s_port_name"),
		ServicePort:     r.Int("k8s_service_port"),
		Headless:        r.String("k8s_service_type") != TypeClusterIP,
		MaxPerSlice:     r.Int("k8s_max_endpoints_per_slice"),
		DeregisterAfter: r.Duration("k8s_deregister_after"),
		LeaseDuration:   r.Duration("k8s_lease_duration"),
		Resync:          r.Duration("k8s_resync"),
		NoSlices:        !slices.Contains(r.List("k8s_write"), WriteSlices),
		BridgeID:        r.Core().BridgeID,
		Segment:         r.Core().Segment,
		Deregister:      r.Core().OnExit != config.OnExitKeep,
	}
	// Every key is read, whatever k8s_write says: a bad value is refused
	// even while unused, as every key's.
	dns := DNSConfig{Object: cmp.Or(r.String("k8s_dnsendpoint_name"), c.Service), Name: strings.TrimSuffix(r.String("k8s_dns_name"), "."),
		TTL: r.Duration("k8s_dns_ttl"), SRV: r.Bool("k8s_dns_srv")}
	if dns.TTL%time.Second != 0 {
		r.Bad("k8s_dns_ttl", r.String("k8s_dns_ttl"), "want whole seconds (a record's TTL)")
	}
	if slices.Contains(r.List("k8s_write"), WriteDNSEndpoint) {
		c.DNS = &dns
		if dns.Name == "" && r.Enabled() {
			r.Bad("k8s_dns_name", "", "k8s_write dnsendpoint needs the DNS name of its records (--k8s-dns-name django.lab.example.com)")
		}
	}
	core := r.Core()
	c.Round = core.Interval + core.Discovery.Timeout
	c.StartupGrace = c.Round + c.LeaseDuration
	c.Guard = fleet.NewGuardConfig(c.Round, core.MissedRounds, core.RemovalGuardRounds, core.MaxRemovalFraction, core.RemovalGuardHeld != "unobserved")
	return c
}

// The values of k8s_write.
const (
	WriteSlices      = "endpointslices"
	WriteDNSEndpoint = "dnsendpoint"
)

// dnsName is a DNS name of RFC 1123 labels, at least two, an optional
// trailing dot; maxDNSName leaves room for the SRV record's
// _<port>._tcp. prefix and a per-server <a-b-c-d>. label.
const (
	dnsName     = `([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.?`
	dnsNameHint = "want a DNS name of two labels or more (lower-case letters, digits and '-', each label starting and ending with a letter or digit, at most 63 characters)"
	maxDNSName  = 200
)

// dnsLabel is an RFC 1123 DNS label, as Service, port and namespace names
// are; the keys declare it (with their lengths), so the chart's schema
// refuses what the bridge refuses.
const (
	dnsLabel       = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	dnsLabelHint   = "want a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
	maxServiceName = 40 // the slices are named <service>-<port>-<n>, at most 63
	maxPortName    = 15
)

// nameProblem says why v is no good as the Service's (k8s_service) or the
// port's (k8s_port_name) name, or "", for a Config built by a program
// (Validate); a loaded one was checked by the keys' Pattern and MaxLen,
// which a test holds to the same verdicts.
func nameProblem(key, v string) string {
	limit, what := maxServiceName, "at most 40 characters (the slices are named <service>-<port>-<n>)"
	if key == "k8s_port_name" {
		limit, what = maxPortName, "at most 15 characters (a Kubernetes port name)"
	}
	if err := checkLabelValue(key, v, true); err != nil {
		return "want a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
	}
	if len(v) > limit {
		return what
	}
	return ""
}

// Validate checks a Config built by a program (the keys' own bounds and
// Load check the same for a loaded one).
func (c Config) Validate() error {
	for _, k := range []struct{ key, v string }{{"k8s_service", c.Service}, {"k8s_port_name", c.PortName}} {
		if why := nameProblem(k.key, k.v); why != "" {
			return fmt.Errorf("%s %q: %s", k.key, k.v, why)
		}
	}
	if c.MaxPerSlice < 1 || c.MaxPerSlice > MaxPerSliceLimit {
		return fmt.Errorf("k8s_max_endpoints_per_slice %d: want 1..%d", c.MaxPerSlice, MaxPerSliceLimit)
	}
	if c.BridgeID == "" {
		return fmt.Errorf("bridge_id: empty")
	}
	if c.NoSlices && c.DNS == nil {
		return fmt.Errorf("k8s_write: nothing to write (want %s, %s or both)", WriteSlices, WriteDNSEndpoint)
	}
	if c.DNS != nil && (c.DNS.Name == "" || c.DNS.Object == "") {
		return fmt.Errorf("k8s_write %s: the DNS name (k8s_dns_name) and the object's name are needed", WriteDNSEndpoint)
	}
	return nil
}

// checkLabelValue checks s is a DNS label (RFC 1123: lower-case letters,
// digits, '-', alphanumeric at both ends), as Service and port names are.
func checkLabelValue(key, s string, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%s: empty", key)
		}
		return nil
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%s %q: want a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)", key, s)
		}
	}
	return nil
}

// build implements sink.Factory.Build.
func build(cfg Config, d sink.Deps) (sink.Sink, error) {
	cfg.Clock, cfg.Once = d.Clock, d.Once
	if d.Once {
		cfg.Deregister = false
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kubernetes sink: %w", err)
	}
	c, err := kubeapi.NewClient(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes sink: %w", err)
	}
	return New(cfg, c, d.Log, d.Registerer), nil
}
