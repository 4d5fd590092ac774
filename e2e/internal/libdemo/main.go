// Command libdemo is a Go program that finds servers with the library alone,
// as a user of github.com/udp-discovery-bridge/bridge would write it: no CLI,
// options from the upstream DISCOVERY_CLIENT_* environment, logs to slog on
// stderr. The end-to-end tests build it and run it in a client namespace.
//
//	libdemo        Discover: {"interfaces": [...], "servers": [...], "elapsed_ms": n}
//	libdemo one    DiscoverOne: {"interfaces": [...], "found": bool, "server": {...}, "elapsed_ms": n}
//
// A bad environment exits 2 with the error on stderr; a failed round exits 4.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

type output struct {
	Interfaces []string          `json:"interfaces"`
	Servers    []discover.Server `json:"servers,omitempty"`
	Found      *bool             `json:"found,omitempty"`
	Server     *discover.Server  `json:"server,omitempty"`
	ElapsedMS  float64           `json:"elapsed_ms"`
}

func main() {
	opts, err := discover.OptionsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))

	var out output
	ifs, err := discover.SelectInterfaces(opts)
	if err != nil {
		fail(err)
	}
	for _, i := range ifs {
		out.Interfaces = append(out.Interfaces, i.Name)
	}

	ctx := context.Background()
	start := time.Now()
	if len(os.Args) > 1 && os.Args[1] == "one" {
		s, ok, err := discover.DiscoverOne(ctx, opts)
		if err != nil {
			fail(err)
		}
		out.Found = &ok
		if ok {
			out.Server = &s
		}
	} else {
		out.Servers, err = discover.Discover(ctx, opts)
		if err != nil {
			fail(err)
		}
	}
	out.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(4)
}
