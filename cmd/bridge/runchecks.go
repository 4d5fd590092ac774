package main

import (
	"context"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/checker"
	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/endpoint"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/pkg/appcheck"
)

// appChecks is what `bridge run` hands the runner for app_check.
type appChecks struct {
	checker runner.Checker  // the scheduler (the loop, --dry-run included); nil otherwise
	sched   *checker.Checks // the same scheduler, for bridge explain
	probe   runner.Probe    // one check per server (--once); nil otherwise
	stop    func()          // stops the scheduler and waits for it
}

// startAppChecks builds the app checks of cfg: nothing with app_check
// none; with --once (and no --dry-run, which applies nothing) one check
// per server after the round; else the scheduler (internal/checker),
// started here and running until ctx ends or stop is called. An error
// names the key at fault and its source.
func startAppChecks(ctx context.Context, cfg *config.Config, once, dry bool, log zerolog.Logger, reg prometheus.Registerer) (appChecks, error) {
	a := appChecks{stop: func() {}}
	switch {
	case !cfg.AppCheck.Enabled() || once && dry:
		return a, nil
	case once:
		c, err := appcheck.New(cfg.AppCheck)
		if err != nil {
			return a, cfg.AppCheckSources(err)
		}
		if cfg.AppCheck.InsecureSkipVerify {
			log.Warn().Str("key", "app_check_tls_insecure").Msg("https app checks do not verify the servers' certificates")
		}
		a.probe = onceProbe(c)
		return a, nil
	}
	checks, err := checker.New(checker.Config{Options: cfg.AppCheck, Log: log, Registerer: reg})
	if err != nil {
		return a, cfg.AppCheckSources(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { checks.Run(ctx) })
	a.checker, a.sched, a.stop = checks, checks, func() { cancel(); wg.Wait() }
	return a, nil
}

// onceProbe is --once's check of one server by c: the one result decides,
// ready when it passed, failing when not.
func onceProbe(c *appcheck.Checker) runner.Probe {
	return func(ctx context.Context, addr netip.AddrPort) endpoint.Check {
		r := c.Check(ctx, addr)
		state := endpoint.Failing
		if r.OK {
			state = endpoint.Ready
		}
		return endpoint.Check{State: state, Output: r.Output, Since: r.At}
	}
}
