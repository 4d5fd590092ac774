package appcheck

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// Kind is the kind of app check (app_check).
type Kind string

// The kinds of app check.
const (
	// None checks nothing: every held server is ready (the default, so a
	// bridge upgraded in place behaves as before).
	None Kind = "none"
	// TCP connects to the server's address and port and closes.
	TCP Kind = "tcp"
	// HTTP sends GET Path over plain HTTP and judges the status.
	HTTP Kind = "http"
	// HTTPS sends GET Path over TLS (verified against the system roots or
	// CAFile unless InsecureSkipVerify) and judges the status.
	HTTPS Kind = "https"
)

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct{ Min, Max int }

// String spells r as app_check_status does: "200-399", or "204".
func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// Options configure an app check. Keys declares the key of each field;
// DefaultOptions holds their defaults.
type Options struct {
	Kind Kind
	// Path is the request path of an http or https check, starting with
	// "/" (app_check_path).
	Path string
	// Status lists the HTTP statuses that pass (app_check_status).
	Status []StatusRange
	// Timeout bounds one check: connect, TLS, request and the first 4 KiB
	// of the body (app_check_timeout).
	Timeout time.Duration
	// Interval is the time between two checks of one server
	// (app_check_interval).
	Interval time.Duration
	// Rise is how many passing checks in a row make a server ready, Fall
	// how many failing checks in a row make it failing (app_check_rise,
	// app_check_fall).
	Rise, Fall int
	// Concurrency bounds the checks in flight at once
	// (app_check_concurrency).
	Concurrency int
	// Jitter spreads the checks: each server's first check waits a random
	// part of Interval × Jitter, and each later one Interval ± that part
	// (app_check_jitter, 0..1).
	Jitter float64
	// TLSServerName is the name an https check sends in SNI and verifies
	// the certificate against (empty: the server's IP address).
	TLSServerName string
	// CAFile is a PEM file of the CAs an https check trusts (empty: the
	// system roots).
	CAFile string
	// InsecureSkipVerify turns off certificate verification of https
	// checks: an explicit opt-in, logged at start.
	InsecureSkipVerify bool
}

// Defaults of the keys.
const (
	DefaultPath        = "/"
	DefaultStatus      = "200-399"
	DefaultTimeout     = 2 * time.Second
	DefaultInterval    = 10 * time.Second
	DefaultRise        = 2
	DefaultFall        = 3
	DefaultConcurrency = 64
	DefaultJitter      = 0.2
)

// category titles the app check keys in --help and the example file.
const category = "App check"

// field is one key and how its parsed value lands in Options.
type field struct {
	setting.Key
	set func(o *Options, v any) error
	// get returns the field's value as the key's parser returns it, so
	// Validate holds values set in code to the key's bounds (nil: Validate
	// checks the field itself).
	get func(o Options) any
}

func key(name string, kind setting.Kind, def, usage string, edit ...func(*setting.Key)) setting.Key {
	k := setting.Key{Name: name, Flag: strings.ReplaceAll(name, "_", "-"), Env: []string{"DISCOVERY_CLIENT_" + strings.ToUpper(name)},
		Default: def, Kind: kind, Group: setting.Run, Category: category, Usage: usage}
	for _, e := range edit {
		e(&k)
	}
	return k
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

// fields are the app check keys, in documentation order: the one
// declaration of each (flags, environment, file keys, the chart's values
// and schema, and the documentation follow from it).
var fields = []field{
	{key("app_check", setting.String, string(None), "check each discovered server's app itself: none (ready as soon as it answers discovery), tcp (connect), http or https (GET app_check_path, judged by app_check_status); the check decides readiness in every sink, discovery decides presence",
		func(k *setting.Key) { k.OneOf = []string{string(None), string(TCP), string(HTTP), string(HTTPS)} }),
		func(o *Options, v any) error { o.Kind = Kind(v.(string)); return nil },
		func(o Options) any { return string(o.Kind) }},
	{key("app_check_path", setting.String, DefaultPath, "path an http or https app check requests (GET); redirects are followed only to the same host and port",
		func(k *setting.Key) {
			k.Pattern, k.PatternHint, k.MaxLen = `/[\x21-\x7e]*`, "want a path starting with / (printable ASCII, no spaces)", 1024
		}),
		func(o *Options, v any) error { o.Path = v.(string); return nil },
		func(o Options) any { return o.Path }},
	{key("app_check_status", setting.String, DefaultStatus, "HTTP statuses that pass an http or https app check: codes and ranges, comma-separated (200-299,301)",
		func(k *setting.Key) { k.Pattern, k.PatternHint = statusList, statusHint }),
		func(o *Options, v any) (err error) { o.Status, err = ParseStatus(v.(string)); return err },
		nil},
	{key("app_check_timeout", setting.Duration, seconds(DefaultTimeout), "deadline of one app check (connect, TLS, request, the first 4 KiB of the body); at most app_check_interval",
		func(k *setting.Key) { k.Min, k.MinExclusive, k.Max = "0", true, "1m" }),
		func(o *Options, v any) error { o.Timeout = v.(time.Duration); return nil },
		func(o Options) any { return o.Timeout }},
	{key("app_check_interval", setting.Duration, seconds(DefaultInterval), "time between two app checks of one server",
		func(k *setting.Key) { k.Min, k.Max = "1s", "1h" }),
		func(o *Options, v any) error { o.Interval = v.(time.Duration); return nil },
		func(o Options) any { return o.Interval }},
	{key("app_check_rise", setting.Int, strconv.Itoa(DefaultRise), "passing app checks in a row that make a server ready (a new server is pending until then)",
		func(k *setting.Key) { k.Min, k.Max = "1", "100" }),
		func(o *Options, v any) error { o.Rise = v.(int); return nil },
		func(o Options) any { return o.Rise }},
	{key("app_check_fall", setting.Int, strconv.Itoa(DefaultFall), "failing app checks in a row that make a ready server failing (kept, not ready)",
		func(k *setting.Key) { k.Min, k.Max = "1", "100" }),
		func(o *Options, v any) error { o.Fall = v.(int); return nil },
		func(o Options) any { return o.Fall }},
	{key("app_check_concurrency", setting.Int, strconv.Itoa(DefaultConcurrency), "app checks in flight at once at most",
		func(k *setting.Key) { k.Min, k.Max = "1", "4096" }),
		func(o *Options, v any) error { o.Concurrency = v.(int); return nil },
		func(o Options) any { return o.Concurrency }},
	{key("app_check_jitter", setting.Float, strconv.FormatFloat(DefaultJitter, 'f', -1, 64), "spread of the app checks, a fraction of app_check_interval: 0 checks every server on a fixed beat, 0.2 moves each check by up to ±20%",
		func(k *setting.Key) { k.Min, k.Max = "0", "1" }),
		func(o *Options, v any) error { o.Jitter = v.(float64); return nil },
		func(o Options) any { return o.Jitter }},
	{key("app_check_tls_server_name", setting.String, "", "https app check: the name sent in SNI and verified in the certificate (empty: the server's IP address, which the certificate must then hold)",
		func(k *setting.Key) {
			k.Pattern, k.PatternHint, k.MaxLen = `[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?`, "want a DNS name such as app.example.com", 253
		}),
		func(o *Options, v any) error { o.TLSServerName = v.(string); return nil },
		func(o Options) any { return o.TLSServerName }},
	{key("app_check_ca_file", setting.String, "", "https app check: PEM file of the CAs to trust (empty: the system roots)"),
		func(o *Options, v any) error { o.CAFile = v.(string); return nil },
		func(o Options) any { return o.CAFile }},
	{key("app_check_tls_insecure", setting.Bool, "false", "https app check: do not verify the server's certificate (an explicit opt-in, warned about at start)"),
		func(o *Options, v any) error { o.InsecureSkipVerify = v.(bool); return nil },
		func(o Options) any { return o.InsecureSkipVerify }},
}

// statusList is the pattern of app_check_status (the chart's schema
// carries it): status codes 100..599 and ranges of them, comma-separated;
// an empty range such as 399-200 is left to ParseStatus.
const (
	statusRangePattern = `\s*[1-5][0-9]{2}\s*(-\s*[1-5][0-9]{2}\s*)?`
	statusList         = statusRangePattern + `(,` + statusRangePattern + `)*`
	statusHint         = "want HTTP status codes (100..599) or ranges of them, comma-separated, such as 200-299,301"
)

// ErrNoField is returned by Options.Set for a name that is no app check
// key.
var ErrNoField = errors.New("not an app check key")

// Keys returns the app check keys, in documentation order, each with its
// flag, environment variable, default, bounds and help. A program may
// generate its flags from them and fill Options with Options.Set.
func Keys() []setting.Key {
	out := make([]setting.Key, len(fields))
	for i, f := range fields {
		k := f.Key
		k.Env, k.OneOf = slices.Clone(k.Env), slices.Clone(k.OneOf)
		out[i] = k
	}
	return out
}

// Set stores v, the value setting.Key.Parse returned for the key name, in
// o. It refuses what the key's parser cannot know (a malformed status
// list) with a *setting.ValueError, and unknown names with ErrNoField.
func (o *Options) Set(name string, v any) error {
	for _, f := range fields {
		if f.Name != name {
			continue
		}
		if err := f.Check(v); err != nil {
			return err
		}
		return f.set(o, v)
	}
	return fmt.Errorf("app check key %s: %w", name, ErrNoField)
}

// DefaultOptions returns the keys' defaults: no check; when one is turned
// on, GET / every 10 s with a 2 s deadline, 200-399 passes, rise 2, fall
// 3, 64 in flight, 20% jitter.
func DefaultOptions() Options {
	var o Options
	for _, f := range fields {
		v, err := f.Parse(f.Default)
		if err == nil {
			err = f.set(&o, v)
		}
		if err != nil { // the table's own default: a test parses them all
			panic(fmt.Sprintf("appcheck: default of %s: %v", f.Name, err))
		}
	}
	return o
}

// Enabled reports whether o checks anything.
func (o Options) Enabled() bool { return o.Kind != "" && o.Kind != None }

// Validate checks o: when o is enabled, each field against its key's
// bounds (as Set would, so Options built in code meet the bounds a file or
// flag must meet), the status list and the path of an http or https check;
// and, whatever the kind, the rules that span keys. Each problem names its
// keys; all of them are joined.
func (o Options) Validate() error {
	var errs []error
	if o.Enabled() {
		errs = o.validateFields()
	}
	if o.Enabled() && o.Timeout > o.Interval {
		errs = append(errs, fmt.Errorf("app_check_timeout %s must not exceed app_check_interval %s: one server's checks never overlap", o.Timeout, o.Interval))
	}
	if o.InsecureSkipVerify && o.CAFile != "" {
		errs = append(errs, fmt.Errorf("app_check_tls_insecure and app_check_ca_file: set one, not both (an unverified check trusts no CA)"))
	}
	if o.Kind != HTTPS && o.Enabled() && (o.InsecureSkipVerify || o.CAFile != "" || o.TLSServerName != "") {
		errs = append(errs, fmt.Errorf("app_check_tls_server_name, app_check_ca_file and app_check_tls_insecure apply to app_check https only, not %s", o.Kind))
	}
	return errors.Join(errs...)
}

// validateFields checks each field of an enabled o against its key.
func (o Options) validateFields() []error {
	var errs []error
	for _, f := range fields {
		if f.get == nil {
			continue
		}
		if err := f.Check(f.get(o)); err != nil {
			var ve *setting.ValueError
			shown := fmt.Sprint(f.get(o))
			if errors.As(err, &ve) && ve.Value != "" {
				shown = ve.Value
			}
			errs = append(errs, fmt.Errorf("%s: bad value %q: %w", f.Name, shown, err))
		}
	}
	if math.IsNaN(o.Jitter) {
		errs = append(errs, fmt.Errorf("app_check_jitter: bad value NaN: want a fraction 0 <= f <= 1"))
	}
	if o.Kind != HTTP && o.Kind != HTTPS {
		return errs
	}
	if len(o.Status) == 0 {
		errs = append(errs, fmt.Errorf("app_check_status: empty: no status would pass the check"))
	}
	for _, r := range o.Status {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			errs = append(errs, fmt.Errorf("app_check_status: bad range %d-%d: want HTTP status codes 100..599, low to high", r.Min, r.Max))
		}
	}
	if o.Path != "" {
		if _, err := requestURL(o.Path); err != nil {
			errs = append(errs, fmt.Errorf("app_check_path: bad value %q: %w", o.Path, err))
		}
	}
	return errs
}

// requestURL parses path, the request path (and query) of an http check,
// into a URL whose Scheme and Host the check fills in. It is parsed after
// a host of its own so that "//name/x" stays a path and never names a
// host.
func requestURL(path string) (*url.URL, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("want a path starting with /")
	}
	u, err := url.Parse("http://h" + path)
	if err != nil || u.Host != "h" || u.User != nil {
		return nil, errors.New("want a path and query, such as /healthz or /status?full=1")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// ParseStatus parses app_check_status: HTTP status codes (100..599) and
// inclusive ranges of them, comma-separated ("200-299,301").
func ParseStatus(s string) ([]StatusRange, error) {
	var out []StatusRange
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		r, err := statusRange(lo, hi, isRange)
		if err != nil {
			return nil, &setting.ValueError{Value: part, Why: "want HTTP status codes (100..599) or ranges of them, comma-separated, such as 200-299,301: " + err.Error()}
		}
		out = append(out, r)
	}
	return out, nil
}

func statusRange(lo, hi string, isRange bool) (StatusRange, error) {
	a, err := statusCode(lo)
	if err != nil {
		return StatusRange{}, err
	}
	if !isRange {
		return StatusRange{a, a}, nil
	}
	b, err := statusCode(hi)
	if err != nil {
		return StatusRange{}, err
	}
	if b < a {
		return StatusRange{}, fmt.Errorf("range %d-%d is empty", a, b)
	}
	return StatusRange{a, b}, nil
}

// statusCode parses a status code: three decimal digits, 100..599 (not
// "+200" or "0200", which strconv.Atoi would take).
func statusCode(s string) (int, error) {
	t := strings.TrimSpace(s)
	if len(t) != 3 || strings.Trim(t, "0123456789") != "" {
		return 0, fmt.Errorf("%q is no status code", s)
	}
	n, _ := strconv.Atoi(t)
	if n < 100 || n > 599 {
		return 0, fmt.Errorf("%q is no status code", s)
	}
	return n, nil
}

// Passes reports whether status is in one of o.Status.
func (o Options) Passes(status int) bool {
	return slices.ContainsFunc(o.Status, func(r StatusRange) bool { return status >= r.Min && status <= r.Max })
}
