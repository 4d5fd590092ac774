package sink

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Defaults and limits of ConsulConfig.
const (
	DefaultConsulService        = "django"
	DefaultConsulTTL            = 30 * time.Second
	DefaultConsulDeregister     = time.Minute
	MinConsulDeregister         = time.Minute // Consul's own floor for DeregisterCriticalServiceAfter
	DefaultConsulCheckInterval  = 10 * time.Second
	DefaultConsulHTTPPath       = "/"
	DefaultConsulResync         = time.Minute
	DefaultConsulLockSessionTTL = 10 * time.Second
	MinConsulLockSessionTTL     = 10 * time.Second // Consul rejects session TTLs below 10s
	DefaultConsulLockWait       = 5 * time.Second
	DefaultConsulParallel       = 8

	// BridgeServiceName is the Consul service name under which every bridge
	// registers itself (its heartbeat TTL check lives there).
	BridgeServiceName = "udp-discovery-bridge"
	// ManagedByValue is the value of the managed-by meta key on everything the
	// bridge registers.
	ManagedByValue = "udp-discovery-bridge"

	// Meta keys written on every registered service.
	MetaManagedBy     = "managed-by"
	MetaBridgeID      = "bridge-id"
	MetaInterface     = "interface"
	MetaSourceAddress = "source-address"
	// MetaChecks fingerprints the check configuration, so that a restart
	// with different check settings re-registers the services.
	MetaChecks = "bridge-checks"

	// OnExit values.
	OnExitDeregister = "deregister"
	OnExitKeep       = "keep"

	// Check values.
	CheckNone = ""
	CheckTCP  = "tcp"
	CheckHTTP = "http"
)

// ConsulConfig configures the Consul sink (agent mode). Empty connection
// fields fall back to consul/api's defaults, which honour CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT,
// CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME and
// CONSUL_HTTP_SSL_VERIFY. Zero durations take the documented defaults.
type ConsulConfig struct {
	// Addr is the agent's HTTP address (host:port, or a URL with scheme).
	Addr string
	// Scheme is "http" or "https"; SSL=true is the same as Scheme "https".
	Scheme string
	SSL    bool
	// Token is the ACL token; TokenFile a file holding it (it wins over
	// Token, like consul's -token-file). Neither ever appears in logs or
	// errors.
	Token     string
	TokenFile string
	// TLS settings.
	CACert             string
	ClientCert         string
	ClientKey          string
	TLSServerName      string
	InsecureSkipVerify bool
	// Datacenter, Namespace and Partition are passed through to Consul.
	Datacenter string
	Namespace  string
	Partition  string

	// Service is the Consul service name of discovered servers (default
	// "django"); Tags are put on each instance.
	Service string
	Tags    []string
	// BridgeID names this bridge in meta and in its own service ID
	// (required; callers default it to the hostname).
	BridgeID string
	// TTL is the bridge's heartbeat check TTL (default 30s). Each Apply
	// refreshes it, so it must exceed the round interval (the caller checks).
	TTL time.Duration
	// DeregisterAfter is DeregisterCriticalServiceAfter on each server's alias
	// check (default and minimum 1m).
	DeregisterAfter time.Duration
	// Check adds a check on the server itself: "" (none), "tcp" or "http",
	// run every CheckInterval (default 10s); HTTPPath (default "/") for http.
	Check         string
	CheckInterval time.Duration
	HTTPPath      string
	// Resync is how often Apply re-reads what it owns from the agent
	// (anti-entropy; default 1m). The first Apply always reads.
	Resync time.Duration
	// OnExit is what Close does with owned services: "deregister" (default)
	// or "keep" (leave them for the heartbeat to expire).
	OnExit string
	// LockKey enables HA: only the holder of this KV lock registers servers.
	// LockSessionTTL is the lock session's TTL (default and minimum 10s);
	// LockWait bounds one blocking read while waiting for the lock (default
	// 5s) and therefore how long Close may wait for the lock goroutine.
	LockKey        string
	LockSessionTTL time.Duration
	LockWait       time.Duration
	// Parallel is how many registrations or deregistrations one Apply keeps
	// in flight (default 8).
	Parallel int
	// Clock returns the current time (default time.Now); tests inject one to
	// pass Resync without sleeping.
	Clock func() time.Time
}

// withDefaults returns c with zero fields set to their defaults.
func (c ConsulConfig) withDefaults() ConsulConfig {
	if c.Service == "" {
		c.Service = DefaultConsulService
	}
	if c.TTL == 0 {
		c.TTL = DefaultConsulTTL
	}
	if c.DeregisterAfter == 0 {
		c.DeregisterAfter = DefaultConsulDeregister
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultConsulCheckInterval
	}
	if c.HTTPPath == "" {
		c.HTTPPath = DefaultConsulHTTPPath
	}
	if c.Resync == 0 {
		c.Resync = DefaultConsulResync
	}
	if c.OnExit == "" {
		c.OnExit = OnExitDeregister
	}
	if c.LockSessionTTL == 0 {
		c.LockSessionTTL = DefaultConsulLockSessionTTL
	}
	if c.LockWait == 0 {
		c.LockWait = DefaultConsulLockWait
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultConsulParallel
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Validate reports every problem of a (defaulted) configuration at once,
// naming the configuration key of each.
func (c ConsulConfig) Validate() error {
	var errs []error
	if c.BridgeID == "" {
		errs = append(errs, errors.New("consul_bridge_id: must not be empty"))
	} else if _, err := quoteFilterString(c.BridgeID); err != nil {
		errs = append(errs, fmt.Errorf("consul_bridge_id %q: %w", c.BridgeID, err))
	}
	if c.Service == "" {
		errs = append(errs, errors.New("consul_service: must not be empty"))
	} else if c.Service == BridgeServiceName {
		errs = append(errs, fmt.Errorf("consul_service %q: reserved for the bridge's own service", c.Service))
	}
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("consul_ttl %s: must be positive", c.TTL))
	}
	if c.DeregisterAfter < MinConsulDeregister {
		errs = append(errs, fmt.Errorf("consul_deregister_after %s: must be at least %s (Consul's floor)", c.DeregisterAfter, MinConsulDeregister))
	}
	switch c.Check {
	case CheckNone, CheckTCP, CheckHTTP:
	default:
		errs = append(errs, fmt.Errorf("consul_check %q: must be empty, %q or %q", c.Check, CheckTCP, CheckHTTP))
	}
	if c.Check != CheckNone && c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("consul_check_interval %s: must be positive", c.CheckInterval))
	}
	if c.Check == CheckHTTP && !strings.HasPrefix(c.HTTPPath, "/") {
		errs = append(errs, fmt.Errorf("consul_http_path %q: must start with /", c.HTTPPath))
	}
	if c.Resync <= 0 {
		errs = append(errs, fmt.Errorf("consul_resync %s: must be positive", c.Resync))
	}
	switch c.OnExit {
	case OnExitDeregister, OnExitKeep:
	default:
		errs = append(errs, fmt.Errorf("on_exit %q: must be %q or %q", c.OnExit, OnExitDeregister, OnExitKeep))
	}
	if c.LockKey != "" {
		if c.LockSessionTTL < MinConsulLockSessionTTL {
			errs = append(errs, fmt.Errorf("consul_lock_session_ttl %s: must be at least %s", c.LockSessionTTL, MinConsulLockSessionTTL))
		}
		if c.LockWait <= 0 {
			errs = append(errs, fmt.Errorf("consul_lock_wait %s: must be positive", c.LockWait))
		}
	}
	if c.Parallel < 1 || c.Parallel > 64 {
		errs = append(errs, fmt.Errorf("consul_parallel %d: must be 1..64", c.Parallel))
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		errs = append(errs, fmt.Errorf("consul_scheme %q: must be http or https", c.Scheme))
	}
	return errors.Join(errs...)
}

// apiConfig builds the consul/api configuration: api.DefaultConfig (the
// CONSUL_* environment) overridden by the non-empty fields of c. It also
// returns the resolved token so errors can be redacted.
func (c ConsulConfig) apiConfig() (*api.Config, string, error) {
	ac := api.DefaultConfig()
	if c.Addr != "" {
		ac.Address = c.Addr
	}
	if c.Scheme != "" {
		ac.Scheme = c.Scheme
	}
	if c.SSL {
		ac.Scheme = "https"
	}
	if c.Datacenter != "" {
		ac.Datacenter = c.Datacenter
	}
	if c.Namespace != "" {
		ac.Namespace = c.Namespace
	}
	if c.Partition != "" {
		ac.Partition = c.Partition
	}
	if c.CACert != "" {
		ac.TLSConfig.CAFile = c.CACert
	}
	if c.ClientCert != "" {
		ac.TLSConfig.CertFile = c.ClientCert
	}
	if c.ClientKey != "" {
		ac.TLSConfig.KeyFile = c.ClientKey
	}
	if c.TLSServerName != "" {
		ac.TLSConfig.Address = c.TLSServerName
	}
	if c.InsecureSkipVerify {
		ac.TLSConfig.InsecureSkipVerify = true
	}

	// Token precedence, as in the consul CLI: token file option, token
	// option, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN. Files are read here
	// so the error names the path (never the content) and consul/api does not
	// re-read them behind our back.
	token := ac.Token // CONSUL_HTTP_TOKEN
	switch {
	case c.TokenFile != "":
		t, err := readTokenFile("consul_token_file", c.TokenFile)
		if err != nil {
			return nil, "", err
		}
		token = t
	case c.Token != "":
		token = c.Token
	case ac.TokenFile != "":
		t, err := readTokenFile(api.HTTPTokenFileEnvName, ac.TokenFile)
		if err != nil {
			return nil, "", err
		}
		token = t
	}
	ac.Token = token
	ac.TokenFile = ""
	return ac, token, nil
}

// readTokenFile reads a token from path; key names the setting for errors.
func readTokenFile(key, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// *PathError names the path and the reason, not the content.
		return "", fmt.Errorf("%s: read token: %w", key, err)
	}
	t := strings.TrimSpace(string(data))
	if t == "" {
		return "", fmt.Errorf("%s %q: file is empty", key, path)
	}
	return t, nil
}
