package chartgen_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/udp-discovery-bridge/bridge/internal/chartgen"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
)

var update = flag.Bool("update", false, "rewrite the chart's generated files from the key table")

const chartDir = "../../charts/udp-discovery-bridge"

// TestChartFilesMatchKeyTable keeps the chart's copy of the key table
// (values.yaml's config block, values.schema.json's config object,
// templates/_keys.tpl) what the key table generates.
func TestChartFilesMatchKeyTable(t *testing.T) {
	c := chartgen.New(builtin.Registry().Schema())
	files, err := c.Files(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		path := filepath.Join(chartDir, name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the key table generates; run: %s", path, chartgen.UpdateCommand)
		}
	}
}

// TestBoundsTableOnlyFillsGaps keeps chartgen's own bounds to the keys
// whose declaration has none.
func TestBoundsTableOnlyFillsGaps(t *testing.T) {
	if err := chartgen.CheckTable(builtin.Registry().Schema().Keys()); err != nil {
		t.Error(err)
	}
}
