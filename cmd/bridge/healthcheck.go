package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
)

// exitUnhealthy is healthcheck's failure status: Docker's HEALTHCHECK reads
// 1 as unhealthy (and reserves 2).
const exitUnhealthy = 1

// healthcheckCommand is the container image's HEALTHCHECK: the image has no
// shell and no curl, so the binary probes its own sibling process.
func healthcheckCommand(schema *config.Schema) *cli.Command {
	addr := metricsAddrKey(schema)
	return &cli.Command{
		Name:  "healthcheck",
		Usage: "exit 0 when a running `bridge run` answers 200 on /healthz, 1 otherwise (a container HEALTHCHECK)",
		Description: "GETs http://<metrics-addr>/healthz. An address without a host, or with a wildcard host\n" +
			"(\":9108\", \"0.0.0.0:9108\", \"[::]:9108\"), is probed on loopback. The address comes from\n" +
			"--metrics-addr or " + strings.Join(addr.Env, " or ") + ", not from a --config file: in a container, set\n" +
			"the variable rather than the flag when `bridge run` listens elsewhere, so both commands see it.\n" +
			"On failure it prints one line saying why on stderr.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "metrics-addr", Usage: "where bridge run serves /healthz (host:port; a wildcard host means loopback)", Value: addr.Default, EnvVars: addr.Env},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long", Value: 3 * time.Second},
		},
		Action: func(c *cli.Context) error {
			url, err := healthURL(c.String("metrics-addr"))
			if err != nil {
				return &exitError{code: exitUnhealthy, err: fmt.Errorf("healthcheck: %w", err)}
			}
			ctx, cancel := healthDeadline(c.Context, c.Duration("timeout"))
			defer cancel()
			if err := probeHealth(ctx, url); err != nil {
				return &exitError{code: exitUnhealthy, err: fmt.Errorf("healthcheck: %w", err)}
			}
			return nil
		},
	}
}

// healthDeadline arms healthcheck's --timeout: context.WithTimeout, a
// variable so that a test sees the deadline the command arms and fires it
// when it chooses, instead of timing the command.
var healthDeadline = context.WithTimeout

// healthURL returns the /healthz URL of a bridge listening on addr, dialled
// on loopback when addr's host is empty or a wildcard.
func healthURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("metrics_addr is empty: the HTTP endpoint is disabled")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics_addr %q: %w", addr, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// probeHealth GETs url and returns nil on 200, else an error naming url and
// what came back.
func probeHealth(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// A fresh transport: no proxy from the environment, no keep-alive.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err // *url.Error: `Get "http://...": dial tcp ...: connection refused`
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// metricsAddrKey is the metrics_addr key: the commands that talk to a
// running `bridge run` (healthcheck, explain) take its default and
// environment for their --metrics-addr.
func metricsAddrKey(schema *config.Schema) config.Key {
	for _, k := range schema.Keys() {
		if k.Name == "metrics_addr" {
			return k
		}
	}
	return config.Key{}
}
