package appcheck_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

func TestParseStatus(t *testing.T) {
	type r = appcheck.StatusRange
	tests := []struct {
		in      string
		want    []r
		wantErr bool
	}{
		{in: "200-399", want: []r{{200, 399}}},
		{in: "200", want: []r{{200, 200}}},
		{in: "200-299,301", want: []r{{200, 299}, {301, 301}}},
		{in: " 200 - 299 , 301 ", want: []r{{200, 299}, {301, 301}}},
		{in: "100-599", want: []r{{100, 599}}},
		{in: "204,204", want: []r{{204, 204}, {204, 204}}},
		{in: "", wantErr: true},
		{in: ",", wantErr: true},
		{in: "200,", wantErr: true},
		{in: "099", wantErr: true},
		{in: "600", wantErr: true},
		{in: "99", wantErr: true},
		{in: "2000", wantErr: true},
		{in: "+200", wantErr: true},
		{in: "0200", wantErr: true},
		{in: "-200", wantErr: true},
		{in: "200-", wantErr: true},
		{in: "299-200", wantErr: true},
		{in: "200-300-400", wantErr: true},
		{in: "2xx", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "٢٠٠", wantErr: true}, // Arabic-Indic digits
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := appcheck.ParseStatus(tt.in)
			if tt.wantErr {
				var ve *setting.ValueError
				if !errors.As(err, &ve) {
					t.Fatalf("ParseStatus(%q) = %v, %v; want a *setting.ValueError", tt.in, got, err)
				}
				if !strings.Contains(ve.Why, "want HTTP status codes") {
					t.Errorf("Why = %q, want it to say what is wanted", ve.Why)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseStatus(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseStatus: whatever ParseStatus accepts holds codes 100..599, each
// range low to high, and reads back the same from its String form.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"200-399", "200", "200-299,301", " 204 ", "", "2000", "+200", "299-200", "200-300-400", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := appcheck.ParseStatus(s)
		if err != nil {
			if got != nil {
				t.Fatalf("ParseStatus(%q) returned %v with error %v", s, got, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("ParseStatus(%q) accepted no range", s)
		}
		parts := make([]string, len(got))
		for i, r := range got {
			if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
				t.Fatalf("ParseStatus(%q) gave range %v", s, r)
			}
			parts[i] = r.String()
		}
		again, err := appcheck.ParseStatus(strings.Join(parts, ","))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("ParseStatus(%q) = %v, but its String form reads back as %v, %v", s, got, again, err)
		}
	})
}

func TestPasses(t *testing.T) {
	o := appcheck.Options{Status: []appcheck.StatusRange{{200, 299}, {301, 301}}}
	for status, want := range map[int]bool{199: false, 200: true, 299: true, 300: false, 301: true, 302: false, 503: false, 0: false} {
		if got := o.Passes(status); got != want {
			t.Errorf("Passes(%d) = %v, want %v", status, got, want)
		}
	}
	if (appcheck.Options{}).Passes(200) {
		t.Error("an empty status list passes 200")
	}
}

func TestDefaultOptions(t *testing.T) {
	o := appcheck.DefaultOptions()
	want := appcheck.Options{
		Kind: appcheck.None, Path: "/", Status: []appcheck.StatusRange{{200, 399}},
		Timeout: 2 * time.Second, Interval: 10 * time.Second, Rise: 2, Fall: 3, Concurrency: 64, Jitter: 0.2,
	}
	if o.Kind != want.Kind || o.Path != want.Path || !slices.Equal(o.Status, want.Status) || o.Timeout != want.Timeout ||
		o.Interval != want.Interval || o.Rise != want.Rise || o.Fall != want.Fall || o.Concurrency != want.Concurrency ||
		o.Jitter != want.Jitter || o.TLSServerName != "" || o.CAFile != "" || o.InsecureSkipVerify {
		t.Errorf("DefaultOptions() = %+v, want %+v", o, want)
	}
	if o.Enabled() {
		t.Error("the default checks something; want none")
	}
	if err := o.Validate(); err != nil {
		t.Errorf("the default does not validate: %v", err)
	}
	for _, k := range []appcheck.Kind{appcheck.TCP, appcheck.HTTP, appcheck.HTTPS} {
		o.Kind = k
		if err := o.Validate(); err != nil {
			t.Errorf("the defaults with app_check %s do not validate: %v", k, err)
		}
	}
}

// TestKeys: every key parses its own default and Set stores it; the keys
// are named, flagged and have an environment variable each.
func TestKeys(t *testing.T) {
	keys := appcheck.Keys()
	if len(keys) != 12 {
		t.Fatalf("%d keys, want 12", len(keys))
	}
	var o appcheck.Options
	for _, k := range keys {
		if !strings.HasPrefix(k.Name, "app_check") || k.Flag != strings.ReplaceAll(k.Name, "_", "-") ||
			!slices.Equal(k.Env, []string{"DISCOVERY_CLIENT_" + strings.ToUpper(k.Name)}) || k.Usage == "" {
			t.Errorf("key %+v: name, flag, env or usage off", k)
		}
		v, err := k.Parse(k.Default)
		if err != nil {
			t.Errorf("key %s: default %q: %v", k.Name, k.Default, err)
			continue
		}
		if err := o.Set(k.Name, v); err != nil {
			t.Errorf("Set(%s, %v): %v", k.Name, v, err)
		}
	}
	def := appcheck.DefaultOptions()
	if o.Kind != def.Kind || o.Path != def.Path || !slices.Equal(o.Status, def.Status) || o.Timeout != def.Timeout || o.Jitter != def.Jitter {
		t.Errorf("keys' defaults set %+v, DefaultOptions is %+v", o, def)
	}
	// Keys returns copies: changing one changes nothing for the next caller.
	keys[0].OneOf[0], keys[0].Env[0] = "x", "y"
	if again := appcheck.Keys(); again[0].OneOf[0] == "x" || again[0].Env[0] == "y" {
		t.Error("Keys shares its slices with the caller")
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		check   func(appcheck.Options) bool
		wantErr string
	}{
		{name: "app_check", v: "https", check: func(o appcheck.Options) bool { return o.Kind == appcheck.HTTPS }},
		{name: "app_check", v: "udp", wantErr: "want one of none, tcp, http, https"},
		{name: "app_check", v: 1, wantErr: "want a string value"},
		{name: "app_check_path", v: "/healthz", check: func(o appcheck.Options) bool { return o.Path == "/healthz" }},
		{name: "app_check_path", v: "healthz", wantErr: "starting with /"},
		{name: "app_check_path", v: "/a b", wantErr: "starting with /"},
		{name: "app_check_status", v: "200-299,301", check: func(o appcheck.Options) bool { return len(o.Status) == 2 }},
		{name: "app_check_status", v: "2xx", wantErr: "want HTTP status codes"},
		{name: "app_check_timeout", v: 500 * time.Millisecond, check: func(o appcheck.Options) bool { return o.Timeout == 500*time.Millisecond }},
		{name: "app_check_timeout", v: time.Duration(0), wantErr: "must be > 0"},
		{name: "app_check_timeout", v: 2 * time.Minute, wantErr: "at most 1m"},
		{name: "app_check_interval", v: 500 * time.Millisecond, wantErr: "at least 1s"},
		{name: "app_check_rise", v: 0, wantErr: "want 1..100"},
		{name: "app_check_fall", v: 101, wantErr: "want 1..100"},
		{name: "app_check_concurrency", v: 8, check: func(o appcheck.Options) bool { return o.Concurrency == 8 }},
		{name: "app_check_concurrency", v: 5000, wantErr: "want 1..4096"},
		{name: "app_check_jitter", v: 1.5, wantErr: "want a fraction"},
		{name: "app_check_jitter", v: 0.0, check: func(o appcheck.Options) bool { return o.Jitter == 0 }},
		{name: "app_check_tls_server_name", v: "app.example.com", check: func(o appcheck.Options) bool { return o.TLSServerName == "app.example.com" }},
		{name: "app_check_tls_server_name", v: "app example", wantErr: "want a DNS name"},
		{name: "app_check_ca_file", v: "/etc/ca.pem", check: func(o appcheck.Options) bool { return o.CAFile == "/etc/ca.pem" }},
		{name: "app_check_tls_insecure", v: true, check: func(o appcheck.Options) bool { return o.InsecureSkipVerify }},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%v", tt.name, tt.v), func(t *testing.T) {
			o := appcheck.DefaultOptions()
			err := o.Set(tt.name, tt.v)
			if tt.wantErr != "" {
				var ve *setting.ValueError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Set(%s, %v) = %v, want a *setting.ValueError saying %q", tt.name, tt.v, err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(o) {
				t.Fatalf("Set(%s, %v) = %v, options %+v", tt.name, tt.v, err, o)
			}
		})
	}
	o := appcheck.DefaultOptions()
	if err := o.Set("app_check_nope", "x"); !errors.Is(err, appcheck.ErrNoField) || !strings.Contains(err.Error(), "app_check_nope") {
		t.Errorf("Set of an unknown key = %v, want ErrNoField naming it", err)
	}
}

func TestValidate(t *testing.T) {
	enabled := func(k appcheck.Kind, edit func(*appcheck.Options)) appcheck.Options {
		o := appcheck.DefaultOptions()
		o.Kind = k
		if edit != nil {
			edit(&o)
		}
		return o
	}
	tests := []struct {
		name string
		o    appcheck.Options
		want []string // each a part of the error; none: valid
	}{
		{name: "zero options check nothing", o: appcheck.Options{}},
		{name: "none ignores the other fields", o: appcheck.Options{Kind: appcheck.None, Rise: -1}},
		{name: "http defaults", o: enabled(appcheck.HTTP, nil)},
		{name: "https with a CA file", o: enabled(appcheck.HTTPS, func(o *appcheck.Options) { o.CAFile = "/ca.pem"; o.TLSServerName = "app.test" })},
		{name: "timeout equal to interval", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.Timeout, o.Interval = 5*time.Second, 5*time.Second })},
		{name: "timeout above interval", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.Timeout, o.Interval = 6*time.Second, 5*time.Second }),
			want: []string{"app_check_timeout 6s must not exceed app_check_interval 5s"}},
		{name: "unknown kind", o: enabled("udp", nil), want: []string{`app_check: bad value "udp": want one of none, tcp, http, https`}},
		{name: "insecure and CA", o: enabled(appcheck.HTTPS, func(o *appcheck.Options) { o.InsecureSkipVerify, o.CAFile = true, "/ca.pem" }),
			want: []string{"app_check_tls_insecure and app_check_ca_file: set one, not both"}},
		{name: "TLS keys on http", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.TLSServerName = "app.test" }),
			want: []string{"apply to app_check https only, not http"}},
		{name: "TLS keys on tcp", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.InsecureSkipVerify = true }),
			want: []string{"apply to app_check https only, not tcp"}},
		{name: "zero fields of an enabled check", o: appcheck.Options{Kind: appcheck.HTTP, Path: "/"},
			want: []string{"app_check_timeout: bad value \"0s\": must be > 0", "app_check_interval: bad value \"0s\": at least 1s",
				"app_check_rise: bad value \"0\": want 1..100", "app_check_fall: bad value \"0\": want 1..100",
				"app_check_concurrency: bad value \"0\": want 1..4096", "app_check_status: empty"}},
		{name: "tcp needs no status", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.Status = nil })},
		{name: "bad status range set in code", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.Status = []appcheck.StatusRange{{300, 200}, {0, 700}} }),
			want: []string{"app_check_status: bad range 300-200", "app_check_status: bad range 0-700"}},
		{name: "jitter NaN", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.Jitter = math.NaN() }), want: []string{"app_check_jitter: bad value NaN"}},
		{name: "jitter above 1", o: enabled(appcheck.TCP, func(o *appcheck.Options) { o.Jitter = 2 }), want: []string{"app_check_jitter: bad value \"2\""}},
		{name: "path without slash", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.Path = "healthz" }), want: []string{"app_check_path: bad value \"healthz\""}},
		{name: "path naming a host", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.Path = "//evil.example/x" })},
		{name: "path with a bad escape", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.Path = "/a%zz" }), want: []string{"app_check_path: bad value \"/a%zz\": want a path and query"}},
		{name: "path with a query", o: enabled(appcheck.HTTP, func(o *appcheck.Options) { o.Path = "/status?full=1" })},
		{name: "server name not a DNS name", o: enabled(appcheck.HTTPS, func(o *appcheck.Options) { o.TLSServerName = "a b" }), want: []string{"app_check_tls_server_name: bad value \"a b\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to hold %q", err, w)
				}
			}
		})
	}
}

func TestStatusRangeString(t *testing.T) {
	for r, want := range map[appcheck.StatusRange]string{{200, 399}: "200-399", {204, 204}: "204"} {
		if got := r.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", r, got, want)
		}
	}
}
