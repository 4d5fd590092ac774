package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/internal/relay"
	"github.com/udp-discovery-bridge/bridge/internal/relay/relaymetrics"
	"github.com/udp-discovery-bridge/bridge/internal/relay/source"
	"github.com/udp-discovery-bridge/bridge/internal/runner"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul"
	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/catalog"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// relayPlan is the relay of `bridge run` (relay_interfaces), resolved
// before anything starts.
type relayPlan struct {
	source string // consul, kubernetes or local
	engine relay.Config
	keeper *source.Keeper
	reader source.Reader // nil for local: the runner feeds local
	loop   source.Loop
	local  *source.Local
	port   uint16 // where the relay listens: discovery_port on broadcast addresses
}

// planRelay resolves the relay of cfg: nil when relay_interfaces is empty
// (the default). It resolves relay_source (auto), builds the source's
// reader with the sink's own client settings (no network call), and the
// engine's configuration from the relay keys and discovery's codec (opts:
// message, prefix, Fernet key, token age), so the relay speaks the wire
// format discovery speaks. An error names the key at fault (a usage
// error).
func planRelay(cfg *config.Config, opts discover.Options, clk clock.Clock, log zerolog.Logger) (*relayPlan, error) {
	rc := cfg.Relay
	if !rc.Enabled() {
		return nil, nil
	}
	cc, _ := cfg.SinkSettings("consul").(consul.Config)
	kc, _ := cfg.SinkSettings("kubernetes").(kubernetes.Config)
	name, err := cfg.ResolveRelaySource(cc.Mode == consul.ModeCatalog, !kc.NoSlices)
	if err != nil {
		return nil, err
	}
	p := &relayPlan{source: name, port: opts.Port}
	var period time.Duration
	switch name {
	case config.RelaySourceConsul:
		r, err := catalog.NewPassingReader(catalog.Config{SharedConfig: cc.SharedConfig, Catalog: cc.Catalog}, 0)
		if err != nil {
			return nil, err
		}
		p.reader, period = r, catalog.RelayPeriod(r.Wait())
		p.loop = source.Loop{Every: catalog.RelayEvery, Timeout: catalog.RelayTimeout(r.Wait())}
	case config.RelaySourceKubernetes:
		r, err := kubernetes.NewReadyReader(kc)
		if err != nil {
			return nil, err
		}
		p.reader, period = r, kubernetes.RelayPoll+kubernetes.RelayTimeout
		p.loop = source.Loop{Every: kubernetes.RelayPoll, Timeout: kubernetes.RelayTimeout}
	default: // local: a completed round refreshes the set
		period = cfg.Interval + cfg.Discovery.Timeout
	}
	p.keeper = source.NewKeeper(source.Options{Name: name, Period: period, MaxStale: rc.MaxStale, Clock: clk,
		Log: log.With().Str("component", "relay").Logger()})
	if name == config.RelaySourceLocal {
		p.local = source.NewLocal(p.keeper)
	}
	e := rc.Engine
	e.Message, e.Prefix, e.Key = opts.Message, opts.Prefix, opts.Key
	e.MaxTokenAge, e.ClockSkew = opts.MaxTokenAge, opts.ClockSkew
	e.QueueSize = max(e.QueueSize, e.MaxReplies)
	e.MaxTargetAge = p.keeper.MaxAge()
	if err := e.Validate(); err != nil {
		return nil, err
	}
	p.engine = e
	return p, nil
}

// inventory is what the runner tells the relay: the local source's
// snapshots (nil for the other sources, or with the relay off).
func (p *relayPlan) inventory() runner.Inventory {
	if p == nil || p.local == nil {
		return nil
	}
	return p.local
}

// relayConn is the relay's socket.
type relayConn interface {
	relay.Conn
	Close() error
}

// relayDeps are what startRelay takes from `bridge run` (tests inject
// theirs).
type relayDeps struct {
	lister iface.Lister
	clock  clock.Clock
	log    zerolog.Logger
	reg    prometheus.Registerer
	health *runner.Health
	// listen opens the sockets (nil: relay.ListenBroadcast on the plan's
	// port).
	listen func(ctx context.Context, port uint16) (relayConn, error)
}

// startRelay starts the relay of p beside discovery: its socket, the
// source's reader and staleness watch, the engine, its metrics and its
// notes on /readyz. It warns of a relay interface the host does not have
// (as of interfaces_whitelist: it may appear later, and the relay re-reads
// the interfaces every 10 s). The returned stop ends it all and closes the
// socket; the relay also stops when ctx ends.
func startRelay(ctx context.Context, p *relayPlan, d relayDeps) (stop func(), err error) {
	log := d.log.With().Str("component", "relay").Logger()
	if all, err := d.lister.Interfaces(); err == nil {
		for _, name := range iface.Unmatched(all, p.engine.Interfaces) {
			log.Warn().Str("interface", name).Msg("relay_interfaces names an interface this host does not have")
		}
	}
	r, err := relay.New(p.engine, p.keeper, d.lister, d.clock, log)
	if err != nil {
		return nil, err
	}
	listen := d.listen
	if listen == nil {
		listen = func(ctx context.Context, port uint16) (relayConn, error) { return relay.ListenBroadcast(ctx, port) }
	}
	conn, err := listen(ctx, p.port)
	if err != nil {
		return nil, fmt.Errorf("relay: listen on port %d (discovery_port) of 255.255.255.255: %w", p.port, err)
	}
	relaymetrics.New(d.reg, r.Stats, p.keeper.State)
	d.health.AddNoter("relay", p.keeper)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if p.reader != nil {
		wg.Go(func() { source.Run(ctx, p.reader, p.keeper, p.loop) })
	}
	wg.Go(func() { p.keeper.Watch(ctx) })
	wg.Go(func() {
		if err := r.Serve(ctx, conn); err != nil {
			log.Error().Err(err).Msg("relay stopped: answering no probes")
		}
	})
	e := p.engine
	log.Info().Strs("interfaces", e.Interfaces).Str("source", p.source).Uint16("port", p.port).Dur("delay", e.Delay).
		Int("max_replies", e.MaxReplies).Float64("rate_limit", e.Rate).Int("burst", e.Burst).
		Float64("global_rate_limit", e.GlobalRate).Int("global_burst", e.GlobalBurst).
		Dur("max_age", p.keeper.MaxAge()).Bool("encrypted", e.Key != nil).Msg("relay on")
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Debug().Err(err).Msg("relay socket not closed cleanly")
			}
		})
	}, nil
}
