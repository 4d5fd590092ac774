// Package chartgen generates the Helm chart's copy of the bridge's key
// table (charts/udp-discovery-bridge), as internal/config generates
// bridge.example.yaml: the `config:` block of values.yaml with its
// comments, the `config` object of values.schema.json (types, patterns,
// enums, bounds) and templates/_keys.tpl (each key's environment variable,
// kind, default and bounds, read by the chart's validation template).
//
// The chart's own choices are in this file: the keys it sets itself, the
// defaults where it departs from the bridge, and the notes a chart user
// needs. Everything else comes from the key table. The files are rewritten
// by `go test ./internal/chartgen -update`, and that test fails when they
// drift from the key table.
package chartgen

// managed are the keys the chart sets itself rather than taking them from
// .Values.config.
var managed = map[string]bool{
	"bridge_id":         true, // the node name (downward API)
	"metrics_addr":      true, // :<metrics.port>
	"secret_key":        true, // never a value: secretKey mounts a file
	"secret_key_file":   true, // the mounted Secret
	"consul_token":      true, // never a value: consulToken mounts a file
	"consul_token_file": true, // the mounted Secret
	// never a value: mount a file and set prometheus_sd_token_file
	"prometheus_sd_token": true,
}

// chartDefault is a default where the chart departs from the bridge, on
// purpose, and the reason told in the value's comment.
type chartDefault struct {
	value any
	why   string
}

var chartDefaults = map[string]chartDefault{
	"log_format":                {"json", "structured logs for the cluster's log pipeline"},
	"sinks":                     {[]string{"consul"}, "a DaemonSet is for Consul"},
	"consul_mode":               {"catalog", "consul-k8s 1.0+ runs no client agents"},
	"consul_addr":               {"consul-server.consul.svc:8500", "consul-k8s's server Service"},
	"interfaces_skip_container": {true, "a node's CNI bridges are pod networks"},
}

// notes are added to a key's usage in values.yaml: what a chart user does
// differently from a command-line user.
var notes = map[string]string{
	"encryption_enabled":       "set secretKey too; the key is mounted only while this is on",
	"file_path":                "mount a writable volume for it (extraVolumes, extraVolumeMounts)",
	"consul_addr":              "agent mode with consulAgent.useHostIP: replaced by the node's IP",
	"consul_cacert":            "mount the file with extraVolumes",
	"consul_client_cert":       "mount the file with extraVolumes",
	"consul_client_key":        "mount the file with extraVolumes",
	"prometheus_sd":            "without prometheus_sd_addr it is served on metrics.port; scrape configs: docs/sinks/prometheus.md",
	"prometheus_sd_token_file": "mount the token file with extraVolumes (a Secret); prometheus_sd_token is not offered",
}

// before are comment paragraphs written above a key in values.yaml.
var before = map[string][]string{
	"interfaces_whitelist": {
		"Interface choice (docs/configuration/interfaces.md). Every rule",
		"is a filter; /31 and /32 addresses (flannel.1, kube-ipvs0's ClusterIPs, tunl0) are",
		"never probed. The default skips container/CNI interfaces, which leaves the LAN",
		"interfaces of a node; on multi-homed nodes choose one by pattern, CIDR or route.",
	},
	"relay_interfaces": {
		"Answer stock clients' probes on these node interfaces (docs/operations/relay.md) with",
		"the fleet's ready servers of the other segments; relay_source auto reads what this",
		"chart's sink writes (the catalog with consul_mode catalog, else the EndpointSlices with",
		"the kubernetes sink: the chart's Role already lets it list them). The pod is on the host",
		"network: the relay binds UDP discovery_port (9999) of the node's broadcast addresses",
		"(never the wildcard: a stock server on the node keeps every unicast probe), so no",
		"containerPort, Service, hostPort or capability is needed (a port below 1024 would need",
		"NET_BIND_SERVICE). Names are per node: a node without one of them logs it and relays on",
		"the others. Off (empty) by default: it answers hosts on the segments you name.",
	},
	"app_check": {
		"In production, check each server's app (docs/operations/ready.md):",
		"  app_check: http",
		"  app_check_path: /healthz   # a path your app answers 2xx only while it serves",
		"A discovery reply proves only that the server's UDP listener lives (it can run in a",
		"process of its own while the web workers are wedged); with a check, Consul ?passing,",
		"EndpointSlice readiness and Prometheus targets follow whether the app serves. The",
		"chart keeps the bridge's default none because only you know the path: a wrong one",
		"would mark every server not ready. consul_check is deprecated: it maps onto these keys.",
	},
}
