package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// TestManyUnknownKeysOneShortError: a file of 100,000 unknown keys (just
// under 1 MiB) is refused with one short line naming the first few and the
// count. (That none of them is decoded, which keeps it fast, is
// TestUnknownKeysAreNotDecoded's.)
func TestManyUnknownKeysOneShortError(t *testing.T) {
	file := config.UnknownKeys(100_000)
	if len(file) > config.MaxFileSize {
		t.Fatalf("test file is %d bytes, over the limit", len(file))
	}
	p := writeFile(t, "many.yaml", file)
	_, err := Load(Inputs{File: p})
	if err == nil {
		t.Fatal("Load accepted 100,000 unknown keys")
	}
	msg := err.Error()
	for _, want := range []string{"config file " + p, "100000 unknown keys", `"u0"`, `"u4"`, "and 99995 more"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %s", want, msg)
		}
	}
	if len(msg) > 300 || strings.Contains(msg, "\n") {
		t.Errorf("error is %d bytes (want one short line): %.400s", len(msg), msg)
	}
}

func TestFileLimitsAndSources(t *testing.T) {
	big := writeFile(t, "big.yaml", "discovery_message: "+strings.Repeat("a", config.MaxFileSize)+"\n")
	long := writeFile(t, "long.yaml", "discovery_message: "+strings.Repeat("é", 40_000)+"\n")
	tests := []struct {
		name, file string
		want       []string
		maxLen     int
	}{
		{"over 1 MiB", big, []string{"config file " + big, fmt.Sprintf("%d bytes", config.MaxFileSize+20), "limit"}, 300},
		{"long value names the file", long, []string{"discovery_message (file " + long + ")", "80000 bytes", "one UDP datagram"}, 400},
		{"duplicate key", writeFile(t, "dup.yaml", "timeout: 1\nretries: 2\ntimeout: 3\n"), []string{`line 3: key "timeout" is already set on line 1`}, 300},
		{"not a mapping", writeFile(t, "list.yaml", "- a\n- b\n"), []string{"want a mapping"}, 300},
		{"long unknown key", writeFile(t, "key.yaml", strings.Repeat("k", 1000)+": 1\n"), []string{"unknown key", "(1000 bytes)"}, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Inputs{File: tc.file})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %.500s", w, err)
				}
			}
			if len(err.Error()) > tc.maxLen {
				t.Errorf("error is %d bytes: %.500s", len(err.Error()), err)
			}
		})
	}
	t.Run("empty file", func(t *testing.T) {
		if _, err := Load(Inputs{File: writeFile(t, "empty.yaml", "# nothing\n")}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "none.yaml")
		if _, err := Load(Inputs{File: p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("err %v", err)
		}
		_ = os.Remove(p)
	})
}
