package consulclient

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestConsulServiceID(t *testing.T) {
	tests := []struct {
		name    string
		service string
		addr    string
		want    string
	}{
		{"ipv4", "django", "10.213.1.5:8000", "django-10.213.1.5-8000"},
		{"port 1", "django", "10.0.0.1:1", "django-10.0.0.1-1"},
		{"ipv6", "django", "[fe80::1]:8000", "django-fe80--1-8000"},
		{"ipv6 zone", "django", "[fe80::1%eth0]:8000", "django-fe80--1-eth0-8000"},
		{"odd service name", "my app/x", "10.0.0.1:80", "my-app-x-10.0.0.1-80"},
		{"unicode service name", "dj\u00e4ngo", "10.0.0.1:80", "dj--ngo-10.0.0.1-80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ServiceID(tt.service, netip.MustParseAddrPort(tt.addr))
			if got != tt.want {
				t.Errorf("ServiceID(%q, %s) = %q, want %q", tt.service, tt.addr, got, tt.want)
			}
		})
	}
}

func TestConsulQuoteFilterString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"plain", "host-1", `"host-1"`, false},
		{"backslash", `a\b`, `"a\\b"`, false},
		{"double quote uses raw", `a"b`, "`a\"b`", false},
		{"backtick only", "a`b", "\"a`b\"", false},
		{"both quotes", "a\"`b", "", true},
		{"newline", "a\nb", "", true},
		{"carriage return", "a\rb", "", true},
		{"unicode", "h\u00f6st", "\"h\u00f6st\"", false},
		{"empty", "", `""`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := QuoteFilterString(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("QuoteFilterString(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Errorf("QuoteFilterString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			// What Consul's grammar does with it: the literal ends at the
			// first closing quote of its kind, then strconv.Unquote.
			if strings.Count(got[1:len(got)-1], got[:1]) != 0 {
				t.Errorf("literal %s contains its own delimiter", got)
			}
			back, err := strconv.Unquote(got)
			if err != nil || back != tt.in {
				t.Errorf("strconv.Unquote(%s) = %q, %v; want %q", got, back, err, tt.in)
			}
		})
	}
}

// FuzzConsulQuoteFilterString checks that every accepted string round-trips
// through Consul's literal rule and never contains its own delimiter.
func FuzzConsulQuoteFilterString(f *testing.F) {
	for _, s := range []string{"host-1", `a\b`, `a"b`, "a`b", "a\"`b", "a\nb", "", "h\u00f6st"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := QuoteFilterString(s)
		if err != nil {
			return
		}
		inner := got[1 : len(got)-1]
		if strings.Contains(inner, got[:1]) {
			t.Fatalf("literal %s contains its delimiter", got)
		}
		back, err := strconv.Unquote(got)
		if err != nil {
			t.Fatalf("Unquote(%s): %v", got, err)
		}
		if back != s && strings.ToValidUTF8(s, "\uFFFD") != back {
			t.Fatalf("round trip %q -> %s -> %q", s, got, back)
		}
	})
}
