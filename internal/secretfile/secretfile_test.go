package secretfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "s3cr3t-Value"
	tests := []struct {
		name, path, want string
		err              error
	}{
		{"trimmed", write("ok", "\n  "+secret+"\r\n"), secret, nil},
		{"empty", write("empty", " \n\t"), "", ErrEmpty},
		{"missing", filepath.Join(dir, "nope"), "", fs.ErrNotExist},
		{"too large", write("big", secret+strings.Repeat("x", MaxSize)), "", ErrTooLarge},
		{"at the limit", write("limit", strings.Repeat("y", MaxSize)), strings.Repeat("y", MaxSize), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read("some_token_file", tt.path)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "some_token_file") || !strings.Contains(msg, tt.path) || strings.Contains(msg, secret) {
					t.Errorf("error %q must name the setting and the file, never the content", msg)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read = %.20q, %v; want %.20q", got, err, tt.want)
			}
		})
	}
}
