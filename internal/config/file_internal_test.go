package config

import (
	"fmt"
	"strings"
	"testing"
)

// TestUnknownKeysAreNotDecoded: the file parser decodes only the keys the
// schema knows. yaml.v3 decoding a mapping checks for duplicate keys
// pairwise (quadratic: 40,000 keys took 10 s), so 100,000 unknown keys
// beside one known key must cost one decoded key, not 100,001.
func TestUnknownKeysAreNotDecoded(t *testing.T) {
	var b strings.Builder
	b.WriteString(UnknownKeys(100_000))
	b.WriteString("retries: 7\n")
	schema := NewSchema()
	byName := map[string]Key{}
	for _, k := range schema.Keys() {
		byName[k.Name] = k
	}
	y := &yamlParser{byName: byName}
	m, err := y.Unmarshal([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if y.decoded != 1 || len(m) != 1 || m["retries"] != 7 {
		t.Errorf("decoded %d keys, values %v; want only retries: 7", y.decoded, m)
	}
	if y.unknown == nil || !strings.Contains(y.unknown.Error(), "100000 unknown keys") {
		t.Errorf("unknown = %v", y.unknown)
	}
}

// UnknownKeys is a YAML file of n unknown keys, u0 to u<n-1> (for this
// package's tests, config_test's too).
func UnknownKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "u%d: 1\n", i)
	}
	return b.String()
}
