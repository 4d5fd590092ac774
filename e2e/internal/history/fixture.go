package history

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SaveFixture writes events to dir/name.jsonl and v's text form to
// dir/name.verdict.txt, creating dir: a failing history kept as a
// regression case (the package's golden test checks every testdata/*.jsonl
// against its verdict). Name it after the issue, e.g.
// "robustness-issue0031". v is Check's verdict on events.
func SaveFixture(dir, name string, events []Event, v Verdict) error {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("fixture name %q: want a plain file name", name)
	}
	var buf bytes.Buffer
	if err := Write(&buf, events); err != nil {
		return fmt.Errorf("fixture %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".jsonl"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".verdict.txt"), []byte(v.String()), 0o644)
}
