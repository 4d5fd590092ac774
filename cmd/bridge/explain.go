package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/explain"
	"github.com/udp-discovery-bridge/bridge/internal/secretfile"
)

// explainCommand asks a running bridge why a server is, or is not, ready.
func explainCommand(schema *config.Schema) *cli.Command {
	addr := metricsAddrKey(schema)
	return &cli.Command{
		Name:      "explain",
		Usage:     "ask a running `bridge run` why a server is, or is not, ready",
		ArgsUsage: "<ip[:port]>",
		Description: "GETs " + explain.Path + "?server=<ip[:port]> from a running bridge (its debug_endpoint must be on; it needs\n" +
			"the prometheus_sd token when one is set) and prints, for each server it holds at that address: its state\n" +
			"(pending, ready, failing, unobserved), how discovery sees it (source, interface, network, last reply's age,\n" +
			"missed rounds), the rule that removes it next (and the removal guard's episode when it holds it), the app\n" +
			"check's latest results, what each sink did with it (written, skipped and why, pending; held when the fleet's\n" +
			"removal guard holds it) and, in a fleet (Consul catalog mode, Kubernetes), which bridges observe it with their\n" +
			"verdicts. In a fleet it also says, when it matters, whether the fleet's removal guard holds a server at the\n" +
			"address: since and until when, how many servers went unobserved of how many, what consumers see meanwhile\n" +
			"(only the leading bridge knows: another one says so).\n" +
			"Exit 0 when every server at the address is ready, 1 when one is not or none is held, 4 when the bridge\n" +
			"cannot be asked, 2 on bad usage. --json prints the report as the bridge serves it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "the bridge's metrics_addr as a URL (default: http://<--metrics-addr>, a wildcard host meaning loopback)"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "where bridge run serves its HTTP endpoints (host:port)", Value: addr.Default, EnvVars: addr.Env},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the bridge's prometheus_sd bearer token (when it has one)", EnvVars: []string{"DISCOVERY_CLIENT_PROMETHEUS_SD_TOKEN_FILE"}},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 10 * time.Second},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr(errors.New("explain: want one server, <ip> or <ip:port>"))
			}
			server := c.Args().First()
			if _, _, err := explain.ParseQuery(server); err != nil {
				return usageErr(fmt.Errorf("explain: %w", err))
			}
			base := c.String("url")
			if base == "" {
				u, err := healthURL(c.String("metrics-addr"))
				if err != nil {
					return usageErr(fmt.Errorf("explain: %w", err))
				}
				base = strings.TrimSuffix(u, "/healthz")
			}
			token := ""
			if f := c.String("token-file"); f != "" {
				t, err := secretfile.Read("--token-file", f)
				if err != nil {
					return usageErr(fmt.Errorf("explain: %w", err))
				}
				token = t
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			tr := &http.Transport{DisableKeepAlives: true}
			defer tr.CloseIdleConnections()
			rep, body, err := explain.Fetch(ctx, &http.Client{Transport: tr}, base, server, token)
			if err != nil {
				return runtimeErr(err)
			}
			if c.Bool("json") {
				_, err = c.App.Writer.Write(body)
			} else {
				err = explain.Text(c.App.Writer, rep)
			}
			if err != nil {
				return runtimeErr(fmt.Errorf("explain: write: %w", err))
			}
			for _, s := range rep.Servers {
				if !s.Ready {
					return quietExit(exitNone)
				}
			}
			if len(rep.Servers) == 0 {
				return quietExit(exitNone)
			}
			return nil
		},
	}
}
