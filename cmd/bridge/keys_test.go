package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

// TestEveryKeyOnEverySurface walks the key table (the core's, pkg/discover's
// and every built-in sink's) and checks each surface derived from it: the
// flag of each command that takes the key, its aliases and its variable in
// --help, the file key, every environment variable (the first one set
// wins), bridge.example.yaml, and for the discovery keys the library's
// LoadOptions reading the same variables.
func TestEveryKeyOnEverySurface(t *testing.T) {
	reg := builtin.Registry()
	schema := reg.Schema()
	app := newApp(io.Discard, io.Discard, reg)
	commands := map[config.Group][]string{
		config.GroupGlobal:    {"run", "discover", "interfaces", "doctor", "respond"},
		config.GroupDiscovery: {"run", "discover", "doctor", "interfaces"},
		config.GroupRun:       {"run"},
	}
	example, err := os.ReadFile("../../bridge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	discoveryKeys := map[string]bool{}
	for _, k := range discover.Keys() {
		discoveryKeys[k.Name] = true
	}
	for _, k := range schema.Keys() {
		t.Run(k.Name, func(t *testing.T) {
			for _, name := range commands[k.Group] {
				f := findFlag(app.Command(name).Flags, k.Flag)
				if f == nil {
					t.Errorf("bridge %s has no --%s", name, k.Flag)
					continue
				}
				if got := f.Names()[1:]; !slices.Equal(got, k.Aliases) && !(len(got) == 0 && len(k.Aliases) == 0) {
					t.Errorf("bridge %s --%s aliases %v, want %v", name, k.Flag, got, k.Aliases)
				}
				if len(k.Env) > 0 && !strings.Contains(f.(cli.DocGenerationFlag).GetUsage(), "[$"+k.Env[0]+"]") {
					t.Errorf("bridge %s --%s usage does not name $%s", name, k.Flag, k.Env[0])
				}
			}
			if k.Group == config.GroupGlobal && findFlag(app.Flags, k.Flag) == nil {
				t.Errorf("bridge has no global --%s", k.Flag)
			}
			want := "\n# flag --" + k.Flag
			if len(k.Env) > 0 {
				want += ", env " + strings.Join(k.Env, " or ")
			}
			want += "\n# " + k.Name + ": "
			if !strings.Contains(string(example), want) {
				t.Errorf("bridge.example.yaml lacks %q", want)
			}
			if k.Default == "" {
				return
			}
			file := filepath.Join(t.TempDir(), "one.yaml")
			if err := os.WriteFile(file, []byte(k.Name+": "+yamlScalar(k)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := schema.Load(config.Inputs{File: file})
			if err != nil || c.Source(k.Name) != "file "+file {
				t.Errorf("file key %s: %v, source %q", k.Name, err, c.Source(k.Name))
			}
			for i, env := range k.Env {
				// Every variable of the key is set from this one on: the first wins.
				vars := map[string]string{}
				for _, later := range k.Env[i:] {
					vars[later] = k.Default
				}
				lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
				c, err := schema.Load(config.Inputs{LookupEnv: lookup})
				if err != nil || c.Source(k.Name) != "env "+env {
					t.Errorf("env %s: %v, source %q", env, err, c.Source(k.Name))
				}
				if discoveryKeys[k.Name] {
					if _, err := discover.LoadOptions(lookup); err != nil {
						t.Errorf("discover.LoadOptions with %s: %v", env, err)
					}
				}
			}
		})
	}
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// yamlScalar writes k's default as a YAML value.
func yamlScalar(k config.Key) string {
	if k.Kind == config.KindList {
		return "[" + k.Default + "]"
	}
	return `"` + k.Default + `"`
}

// TestKeyPatternsCompile: every key's declared Pattern is an RE2
// expression (a bad one would refuse every value).
func TestKeyPatternsCompile(t *testing.T) {
	n := 0
	for _, k := range builtin.Registry().Schema().Keys() {
		if k.Pattern == "" {
			continue
		}
		n++
		if _, err := regexp.Compile(`^(?:` + k.Pattern + `)$`); err != nil {
			t.Errorf("%s: pattern %q: %v", k.Name, k.Pattern, err)
		}
	}
	if n == 0 {
		t.Error("no key declares a pattern")
	}
}
