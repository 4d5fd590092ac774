package sink

import (
	"fmt"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// FileSection is the file sink's part of the configuration.
type FileSection struct{}

// FileSettings are the file sink's loaded settings.
type FileSettings struct {
	Path string
	// Format is FileFormatBridge or FileFormatPrometheus.
	Format string
	// Origin is "file_path (<source>)", for errors raised when the sink is
	// built.
	Origin string
	// SDTargets is the core's sd_targets: which servers the prometheus
	// format lists (config.SDTargetsReady or config.SDTargetsAll).
	SDTargets string
	// Hosts are the names of the hosts format (file_hosts_name,
	// file_hosts_shared_name).
	Hosts HostsNames
}

// The values of file_format.
const (
	// FileFormatBridge is the bridge's own document (FileDocument).
	FileFormatBridge = "bridge"
	// FileFormatPrometheus is Prometheus file_sd: the target groups the
	// http_sd endpoint serves (internal/promsd).
	FileFormatPrometheus = "prometheus"
	// FileFormatHosts is a hosts(5) file of the ready servers
	// (file_hosts.go).
	FileFormatHosts = "hosts"
)

// fileCategory titles the file sink's keys.
const fileCategory = "File sink"

// The patterns of the hosts format's names (RE2, matched whole), which the
// keys declare, so that the chart's schema refuses what the bridge
// refuses. A DNS name is RFC 1123 labels (lower-case letters, digits and
// '-', a letter or digit at both ends, at most 63 characters) joined by
// dots, at most 253 characters.
//
// file_hosts_name must expand to such a name for every IPv4 address and
// port, which a pattern of one regular expression can only promise by
// counting each placeholder at its widest: {ip_dashed} is at most 15
// characters (255-255-255-255), {port} 5 (65535). So both sit in one
// label, {ip_dashed} once and {port} at most once, with at most
// 14 characters before, between and after them: 3 × 14 + 15 + 5 =
// 62 <= 63. What lies between them starts with '-' or a letter, so that
// no two servers share a name (10-1-2-3 and 18000 would read as
// 10-1-2-31 and 8000). The whole pattern is at most 249 characters:
// {ip_dashed} grows by 4 at most, {port} does not grow, 249 + 4 = 253.
const (
	hostsLabel = `[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?`
	// hostsDNSName is file_hosts_shared_name's pattern.
	hostsDNSName = hostsLabel + `(\.` + hostsLabel + `)*`
	hostsHead    = `([a-z0-9][-a-z0-9]{0,13})?`
	hostsBetween = `[-a-z][-a-z0-9]{0,13}`
	hostsTail    = `([-a-z0-9]{0,13}[a-z0-9])?`
	hostsIP      = `\{ip_dashed\}`
	hostsPortPH  = `\{port\}`
	// hostsServerLabel is the label of file_hosts_name that holds the
	// placeholders.
	hostsServerLabel = hostsHead + `(` + hostsIP + `(` + hostsBetween + hostsPortPH + `)?|` + hostsPortPH + hostsBetween + hostsIP + `)` + hostsTail
	// hostsNamePattern is file_hosts_name's pattern.
	hostsNamePattern = `(` + hostsLabel + `\.)*` + hostsServerLabel + `(\.` + hostsLabel + `)*`
	maxHostsName     = 249
	maxDNSName       = 253
)

// The defaults of the hosts format's names: under internal., the
// top-level domain ICANN reserved in 2024 for private use (never
// delegated, so the names cannot clash with public ones), django as
// consul_service and k8s_service call the servers, and udb for the
// bridge, so that a zone of its own (udb.internal) can be served from the
// file alone. No {port}: a DNS name resolves to an address, and the
// servers of one address share it.
const (
	DefaultHostsName       = "django-" + HostsIPDashed + ".udb.internal"
	DefaultHostsSharedName = "django.udb.internal"
)

// hostsNameKey declares file_hosts_name (Keys; HostsNames.Check).
func hostsNameKey() config.Key {
	return config.Key{Name: "file_hosts_name", Flag: "file-hosts-name", Env: []string{"DISCOVERY_CLIENT_FILE_HOSTS_NAME"}, Default: DefaultHostsName, NonEmpty: true,
		Pattern: hostsNamePattern, MaxLen: maxHostsName, Hint: "(so that it stays at most 253 once {ip_dashed} is expanded)", Group: config.GroupRun, Category: fileCategory,
		PatternHint: "want a DNS name (labels of lower-case letters, digits and '-', each starting and ending with a letter or digit and at most 63 characters, joined by '.') holding " +
			HostsIPDashed + " once and " + HostsPort + " at most once, both in one label, with at most 14 characters before, between and after them, and what lies between them starting with '-' or a letter",
		Usage: "file sink, file_format hosts: the name of each ready server, " + HostsIPDashed + " its address with dashes (10-1-2-3), " + HostsPort + " its port"}
}

// hostsSharedNameKey declares file_hosts_shared_name (Keys;
// HostsNames.Check).
func hostsSharedNameKey() config.Key {
	return config.Key{Name: "file_hosts_shared_name", Flag: "file-hosts-shared-name", Env: []string{"DISCOVERY_CLIENT_FILE_HOSTS_SHARED_NAME"}, Default: DefaultHostsSharedName, NonEmpty: true,
		Pattern: hostsDNSName, MaxLen: maxDNSName, Group: config.GroupRun, Category: fileCategory,
		PatternHint: "want a DNS name (labels of lower-case letters, digits and '-', each starting and ending with a letter or digit and at most 63 characters, joined by '.')",
		Usage:       "file sink, file_format hosts: the name every ready server also gets, which resolves to all of them"}
}

// Keys implements Section.
func (FileSection) Keys() []config.Key {
	return []config.Key{
		{Name: "file_path", Flag: "file-path", Env: []string{"DISCOVERY_CLIENT_FILE_PATH"}, Group: config.GroupRun, Category: fileCategory,
			Usage: "file sink: the file to keep up to date (replaced whole at every change)"},
		{Name: "file_format", Flag: "file-format", Env: []string{"DISCOVERY_CLIENT_FILE_FORMAT"}, Default: FileFormatBridge, OneOf: []string{FileFormatBridge, FileFormatPrometheus, FileFormatHosts}, Group: config.GroupRun, Category: fileCategory,
			Usage: "file sink: bridge (the bridge's document: updated_at and servers, with each server's health when app_check is on), prometheus (file_sd target groups, as " + config.PrometheusSDPath + " serves: the servers sd_targets names) or hosts (a hosts(5) file of the ready servers: file_hosts_name, file_hosts_shared_name)"},
		hostsNameKey(),
		hostsSharedNameKey(),
	}
}

// Load implements Section: the path is needed when the sink is on.
func (FileSection) Load(r *config.Reader) FileSettings {
	s := FileSettings{Path: r.String("file_path"), Format: r.String("file_format"), Origin: r.Origin("file_path"),
		SDTargets: r.Core().PrometheusSD.Targets,
		Hosts:     HostsNames{Pattern: r.String("file_hosts_name"), Shared: r.String("file_hosts_shared_name")}}
	if r.Enabled() && s.Path == "" {
		r.Report(fmt.Errorf("%s: the file sink needs file_path (--file-path or DISCOVERY_CLIENT_FILE_PATH)", r.Origin("sinks")))
	}
	return s
}

// FileFactory registers the file sink.
func FileFactory() Factory {
	return NewFactory("file", FileSection{}, func(s FileSettings, d Deps) (Sink, error) {
		newFile := NewFile
		switch s.Format {
		case FileFormatPrometheus:
			newFile = func(path string, clk clock.Clock) (*File, error) {
				return NewFileSD(path, clk, promsd.Identity{BridgeID: d.BridgeID, Segment: d.Segment}, promsd.Selection(s.SDTargets))
			}
		case FileFormatHosts:
			newFile = func(path string, clk clock.Clock) (*File, error) { return NewFileHosts(path, clk, s.Hosts) }
		}
		f, err := newFile(s.Path, d.Clock)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Origin, err)
		}
		return f, nil
	}, nil)
}
