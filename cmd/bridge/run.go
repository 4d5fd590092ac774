package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/connlimit"
	"github.com/udp-discovery-bridge/bridge/internal/explain"
	"github.com/udp-discovery-bridge/bridge/internal/plan"
	"github.com/udp-discovery-bridge/bridge/internal/promsd"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func runCommand(reg *sink.Registry, schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "the sidecar: discover every --interval and keep the sinks (" + strings.Join(reg.Names(), ", ") + ") in step",
		Description: "Runs a discovery round every --interval, adds a server as its first reply arrives (gathered over 5 ms,\n" +
			"without waiting for the round's end) and removes it after --missed-rounds rounds without a reply.\n" +
			"A round whose probes could not be sent is a failed round: it counts as no miss. Removal guard: when one\n" +
			"round would remove more than --max-removal-fraction of the known servers (and at least 2), the removals are held (the sinks keep them, /readyz says so) until\n" +
			"--removal-guard-rounds more rounds confirm them; --max-removal-fraction 1 turns the guard off.\n" +
			"Sinks apply the latest state asynchronously; a slow or unreachable sink never delays\n" +
			"the loop. SIGTERM/SIGINT/SIGHUP: abandon the round, flush the sinks, deregister (--on-exit deregister), exit 0.\n" +
			"--once: one round, apply once at its end, exit 0 (found) or 1 (none); a signal ends it with exit 130. --dry-run: apply nothing, print each round's plan\n" +
			"as JSON lines at its end; with --once, exit 3 when a registry differs from what discovery sees.\n" +
			"--app-check tcp, http or https: the bridge checks each held server's app; discovery decides whether a server is held, the\n" +
			"check whether every sink calls it ready (rise/fall hysteresis; a transition reaches the sinks at once). With --once each\n" +
			"server found is checked once after the round and that result decides ready or failing for the one apply. /readyz does not\n" +
			"depend on the apps' checks.\n" +
			"--relay-interfaces: the relay answers stock clients' probes on those interfaces with the ready servers of --relay-source\n" +
			"(docs/operations/relay.md); not with --once or --dry-run.",
		Flags: append(keyFlags(schema, config.GroupDiscovery, config.GroupRun),
			&cli.BoolFlag{Name: "once", Usage: "run one round, apply it, exit"},
			&cli.BoolFlag{Name: "dry-run", Usage: "apply nothing; print each plan as JSON lines"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := loadRunConfig(c, schema)
			if err != nil {
				return err
			}
			log := newLogger(c, cfg)
			once, dry := c.Bool("once"), c.Bool("dry-run")
			if _, set := os.LookupEnv("GOGC"); !set {
				// Rounds allocate in short bursts and the loop is idle
				// between them: a tight heap goal costs little CPU (the
				// collector runs only during rounds and writes) and keeps
				// a sidecar with 10,000 servers under 30 MiB, a catalog
				// leader of 10,000 under 40 (docs/performance.md).
				debug.SetGCPercent(25)
			}
			client, err := newClient(cfg, log, false)
			if err != nil {
				return err
			}
			var relayP *relayPlan
			switch {
			case cfg.Relay.Enabled() && (once || dry):
				log.Info().Strs("relay_interfaces", cfg.Relay.Engine.Interfaces).Msg("the relay does not run with --once or --dry-run")
			default:
				if relayP, err = planRelay(cfg, client.Options(), clock.Real(), log); err != nil {
					return usageErr(err)
				}
			}
			logInterfaceChoice(log, client)
			promReg := prometheus.NewRegistry()
			bi, _ := debug.ReadBuildInfo()
			promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
				runner.NewBuildInfo(bridgeVersion(), bi))
			id := bridgeIdentity(cfg)
			sinks, err := reg.Build(cfg, sink.Deps{Log: log, Out: c.App.Writer, Once: once, Registerer: promReg, BridgeID: id.BridgeID, Segment: id.Segment,
				AppCheck: cfg.AppCheck.Enabled()})
			if err != nil {
				return usageErr(err)
			}
			checks, err := startAppChecks(c.Context, cfg, once, dry, log, promReg)
			if err != nil {
				return usageErr(err)
			}
			defer checks.stop()
			metrics := runner.NewMetrics(promReg)
			web := httpOptions{bounds: defaultHTTPBounds(), metrics: connlimit.NewMetrics(promReg), log: log}
			health := runner.NewHealth(nil, 3*cfg.Interval+cfg.Discovery.Timeout, promReg)
			if relayP != nil {
				stopRelay, err := startRelay(c.Context, relayP, relayDeps{lister: iface.OS(), clock: clock.Real(), log: log, reg: promReg, health: health})
				if err != nil {
					return runtimeErr(err)
				}
				defer stopRelay()
			}
			var sd promSD
			handler := health.Handler()
			if !once {
				sd, err = newPromSD(cfg, id, handler, log)
				if err != nil {
					return usageErr(err)
				}
				handler = sd.metrics
				if sd.own != nil {
					stopSD, err := serveHTTP(c.Context, "prometheus_sd_addr", cfg.PrometheusSD.Addr, sd.own, web)
					if err != nil {
						return runtimeErr(err)
					}
					defer stopSD()
				}
			}
			var board *explain.Board
			if cfg.DebugEndpoint && !once {
				token, err := promSDToken(cfg)
				if err != nil {
					return usageErr(err)
				}
				board = newBoard(cfg, id, checks.sched, sinks)
				handler = debugHandler(board, token, handler)
				log.Info().Str("path", explain.Path).Bool("bearer_token", token != nil).Msg("debug endpoint on: bridge explain can ask this bridge")
			}
			if cfg.MetricsAddr != "" && !once {
				stopHTTP, err := serveHTTP(c.Context, "metrics_addr", cfg.MetricsAddr, handler, web)
				if err != nil {
					return runtimeErr(err)
				}
				defer stopHTTP()
			}
			out, err := runner.Run(c.Context, client, runner.Config{
				Interval: cfg.Interval, MissedRounds: cfg.MissedRounds, RoundTimeout: cfg.Discovery.Timeout, Once: once, DryRun: dry,
				MaxRemovalFraction: cfg.MaxRemovalFraction, RemovalGuardRounds: cfg.RemovalGuardRounds, HeldUnobserved: cfg.RemovalGuardHeld == "unobserved",
				Limits:    plan.Limits{MaxServers: cfg.MaxServers, MaxPerSource: cfg.Discovery.MaxServersPerSource},
				DryRunOut: c.App.Writer, Sinks: sinks, Log: log, Metrics: metrics, Health: health, Inventory: runner.Inventories(inventory(sd.targets), relayP.inventory()),
				// A round's garbage (every reply, the previous state) is
				// dead once the snapshot is out: collect it and return the
				// pages now rather than hold them through the idle interval.
				AfterRound: debug.FreeOSMemory,
				Encryption: client.Options().Key != nil,
				Checker:    checks.checker, Probe: checks.probe, ProbeConcurrency: cfg.AppCheck.Concurrency,
				Board: boardOf(board),
				// The servers held at start-up are checked at once; their
				// first verdicts come within a timeout, two when the
				// first checks queue behind hung ones.
				FirstVerdictWait: 2*cfg.AppCheck.Timeout + time.Second,
			})
			if err != nil {
				if errors.Is(err, runner.ErrInvalidConfig) {
					return usageErr(err)
				}
				return runtimeErr(err)
			}
			if !once {
				return nil
			}
			if err := interrupted(c.Context); err != nil {
				return err
			}
			switch {
			case out.Failed:
				return roundErr(out.RoundErr)
			case dry && out.Differs:
				return quietExit(exitDiffers)
			case out.Found == 0:
				return quietExit(exitNone)
			}
			return nil
		},
	}
}

// httpBounds are the bounds of the /metrics, /healthz and /readyz server
// and of the http_sd server.
type httpBounds struct {
	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration
	maxHeaderBytes                                            int
	conns                                                     connlimit.Limits
}

// defaultHTTPBounds are the servers' bounds. A scrape is one small request
// and a response of some kilobytes, served in milliseconds: a client
// slower than the timeouts is broken or hostile; a connection that never
// sends is closed after readHeaderTimeout. The default address listens on
// every interface, so a neighbour on the LAN can connect: the connection
// caps keep such clients from taking the descriptors the discovery socket
// and the registry clients need, and the host's own connections (the
// kubelet's probe, `bridge healthcheck`) have a pool of their own that no
// LAN client counts against. A connection over a cap is closed at once
// (internal/connlimit).
func defaultHTTPBounds() httpBounds {
	return httpBounds{
		readHeaderTimeout: 5 * time.Second,
		readTimeout:       10 * time.Second,
		writeTimeout:      10 * time.Second,
		idleTimeout:       15 * time.Second,
		maxHeaderBytes:    16 << 10,
		conns:             connlimit.Limits{Host: 16, PerClient: 8, Total: 64},
	}
}

// httpOptions are what serveHTTP needs besides the address and handler.
type httpOptions struct {
	bounds  httpBounds
	metrics *connlimit.Metrics
	log     zerolog.Logger
}

// inventory returns t as the runner's Inventory, nil when t is nil (the
// http_sd endpoint is off).
func inventory(t *promsd.Targets) runner.Inventory {
	if t == nil {
		return nil
	}
	return t
}

// serveHTTP serves h on addr (the value of key) until the returned stop
// function is called or ctx ends.
func serveHTTP(ctx context.Context, key, addr string, h http.Handler, o httpOptions) (func(), error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", key, addr, err)
	}
	o.log.Info().Str("addr", ln.Addr().String()).Str("key", key).Msg("serving HTTP")
	return serveOn(ln, key, h, o), nil
}

// serveOn serves h on ln, bounded by o, until the returned stop function is
// called.
func serveOn(ln net.Listener, key string, h http.Handler, o httpOptions) func() {
	b := o.bounds
	lim := connlimit.Wrap(ln, connlimit.Options{Limits: b.conns, Name: key, Metrics: o.metrics, Log: o.log})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: b.readHeaderTimeout,
		ReadTimeout:       b.readTimeout,
		WriteTimeout:      b.writeTimeout,
		IdleTimeout:       b.idleTimeout,
		MaxHeaderBytes:    b.maxHeaderBytes,
	}
	go func() {
		if err := srv.Serve(lim); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error().Err(err).Str("key", key).Msg("HTTP server stopped")
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}
