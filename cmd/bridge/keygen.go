package main

import (
	"fmt"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/pkg/discover"
)

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "print a new Fernet key for encrypted discovery (share it with the servers' DISCOVERY_SECRET_KEY)",
		Action: func(c *cli.Context) error {
			k, err := discover.GenerateKey()
			if err != nil {
				return runtimeErr(err)
			}
			_, err = fmt.Fprintln(c.App.Writer, k)
			return err
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintf(c.App.Writer, "bridge %s\n", bridgeVersion())
			return err
		},
	}
}

// bridgeVersion is the version set at build time, else the module version
// the binary was built from (go install), else "dev".
func bridgeVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v
}
