package endpoint

import (
	"net/netip"
	"slices"
	"testing"
)

func eps(addrs ...string) []Endpoint {
	out := make([]Endpoint, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, Endpoint{Addr: netip.MustParseAddrPort(a)})
	}
	return out
}

func addrs(es []Endpoint) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Addr.String())
	}
	return out
}

func TestBetween(t *testing.T) {
	tests := []struct {
		name           string
		old, new       []Endpoint
		added, removed []string
		unchanged      int
	}{
		{"both empty", nil, nil, []string{}, []string{}, 0},
		{"all new", nil, eps("10.0.0.1:8000", "10.0.0.2:8000"), []string{"10.0.0.1:8000", "10.0.0.2:8000"}, []string{}, 0},
		{"all gone", eps("10.0.0.1:8000"), nil, []string{}, []string{"10.0.0.1:8000"}, 0},
		{"same", eps("10.0.0.1:8000", "10.0.0.2:8000"), eps("10.0.0.1:8000", "10.0.0.2:8000"), []string{}, []string{}, 2},
		{"port is identity", eps("10.0.0.1:8000"), eps("10.0.0.1:8001"), []string{"10.0.0.1:8001"}, []string{"10.0.0.1:8000"}, 0},
		{"interleaved", eps("10.0.0.1:8000", "10.0.0.3:8000", "10.0.0.5:8000"), eps("10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.9:8000"),
			[]string{"10.0.0.2:8000", "10.0.0.9:8000"}, []string{"10.0.0.1:8000", "10.0.0.5:8000"}, 1},
		{"numeric not lexical order", eps("10.0.0.9:8000"), eps("10.0.0.10:8000", "10.0.0.9:8000"), []string{"10.0.0.10:8000"}, []string{}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Between(Sorted(tc.old), Sorted(tc.new))
			if !slices.Equal(addrs(d.Added), tc.added) || !slices.Equal(addrs(d.Removed), tc.removed) || d.Unchanged != tc.unchanged {
				t.Errorf("Between = +%v -%v =%d, want +%v -%v =%d", addrs(d.Added), addrs(d.Removed), d.Unchanged, tc.added, tc.removed, tc.unchanged)
			}
			if d.Empty() != (len(tc.added) == 0 && len(tc.removed) == 0) {
				t.Errorf("Empty() = %v", d.Empty())
			}
		})
	}
}

func TestSortedDoesNotModifyInput(t *testing.T) {
	in := eps("10.0.0.2:1", "10.0.0.1:1")
	out := Sorted(in)
	if in[0].Addr.String() != "10.0.0.2:1" || out[0].Addr.String() != "10.0.0.1:1" {
		t.Fatalf("in %v out %v", addrs(in), addrs(out))
	}
}
