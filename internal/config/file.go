package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a config file: every key of bridge.example.yaml with
// long comments is about 15 KB, so 1 MiB is generous and keeps a stray or
// hostile file from costing memory and time.
const MaxFileSize = 1 << 20

// maxUnknownShown is how many unknown keys an error names; the rest are
// counted.
const maxUnknownShown = 5

// maxShown bounds a value or key quoted in a message.
const maxShown = 64

// readFile reads the config file at path, at most MaxFileSize bytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d (1 MiB)", st.Size(), MaxFileSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("more than the limit of %d bytes (1 MiB)", MaxFileSize)
	}
	return b, nil
}

// yamlParser is the koanf.Parser of the config file: it returns the
// file's top-level keys that the schema knows (byName), decoded. It checks
// every key with one map lookup before decoding anything: yaml.v3 decoding
// a mapping checks for duplicate keys pairwise (quadratic: 40,000 keys took
// 10 s), so only the known keys, a few dozen at most, are decoded. Unknown
// keys are one problem naming the first few and counting the rest, kept in
// unknown beside the known keys' values (an error from Unmarshal is for a
// file that cannot be used at all).
type yamlParser struct {
	byName  map[string]Key
	unknown error
	decoded int // the keys decoded (known ones)
}

// Unmarshal implements koanf.Parser.
func (y *yamlParser) Unmarshal(b []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return map[string]any{}, nil // empty file
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return map[string]any{}, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping of keys to values", top.Line)
	}
	known := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	seen := make(map[string]int, len(top.Content)/2)
	var names []string
	nUnknown := 0
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := top.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key must be a plain name", k.Line)
		}
		if line, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("line %d: key %s is already set on line %d", k.Line, Shorten(k.Value), line)
		}
		seen[k.Value] = k.Line
		if _, ok := y.byName[k.Value]; !ok {
			if nUnknown++; len(names) < maxUnknownShown {
				names = append(names, Shorten(k.Value))
			}
			continue
		}
		known.Content = append(known.Content, k, top.Content[i+1])
	}
	switch {
	case nUnknown == 1:
		y.unknown = fmt.Errorf("unknown key %s", names[0])
	case nUnknown > len(names):
		y.unknown = fmt.Errorf("%d unknown keys: %s and %d more", nUnknown, strings.Join(names, ", "), nUnknown-len(names))
	case nUnknown > 1:
		y.unknown = fmt.Errorf("%d unknown keys: %s", nUnknown, strings.Join(names, ", "))
	}
	m := map[string]any{}
	if err := known.Decode(&m); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, errors.New(strings.Join(te.Errors, "; "))
		}
		return nil, err
	}
	y.decoded = len(known.Content) / 2
	return m, nil
}

// Marshal implements koanf.Parser; the bridge never writes its file.
func (y *yamlParser) Marshal(map[string]any) ([]byte, error) {
	return nil, errors.New("config: writing the config file is not supported")
}

// Shorten quotes s for a message, cutting it to a few dozen bytes and
// saying how long it was: a 10 MB value must not make a 10 MB error.
func Shorten(s string) string {
	if len(s) <= maxShown {
		return fmt.Sprintf("%q", s)
	}
	cut := maxShown
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:cut], len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
