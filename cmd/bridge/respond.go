package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func respondCommand(schema *config.Schema) *cli.Command {
	// The server side answers what a client sends by default: the
	// discovery keys' defaults.
	def := discover.DefaultOptions()
	return &cli.Command{
		Name:  "respond",
		Usage: "answer discovery probes like a django-udp-discovery server (for demos and tests)",
		Description: "Listens on --bind:--port (SO_REUSEADDR/SO_REUSEPORT, as the stock server) and answers a probe whose\n" +
			"payload equals --message byte for byte with PREFIX + IP[:APP-PORT], unicast to the sender. In encrypted\n" +
			"mode probe and reply are Fernet tokens; plaintext probes, garbage and wrong-key tokens get no reply.\n" +
			"--ip auto advertises the address of the default route, or 127.0.0.1 when there is none (as the stock server).\n" +
			"A probe's source address can be forged and a reply is bigger than the probe (measured: 1.14 times in bytes on\n" +
			"the wire with IPv4 and UDP headers, plaintext; at most 1.37 with the longest address and port; 1.16 encrypted).\n" +
			"So it never answers a probe from 0.0.0.0/8, 255.255.255.255, multicast, 240.0.0.0/4, source port 0, or the\n" +
			"network or broadcast address of one of this host's networks (its interfaces' prefixes, /30 or shorter, re-read\n" +
			"every 10s): no reflection to a whole network. 127.0.0.0/8 sources are answered (only this host can send from\n" +
			"them). Each source is answered at most --rate-limit probes a second (after a burst of --burst), and all\n" +
			"sources together at most --global-rate-limit replies a second (after a burst of --global-burst), so a flood\n" +
			"of probes forged from many sources makes it send at most that many replies a second. Probes refused or\n" +
			"dropped are counted by reason and logged every 10s in which there were some, and at exit.\n" +
			"What it cannot do: tell a bridge's probes from forged ones. A neighbour forging a bridge's address can use up\n" +
			"that bridge's per-source allowance, and anyone who can send it probes the global one, silencing this server\n" +
			"for that bridge or for all. In encrypted mode a probe cannot be made without the key, but a captured probe\n" +
			"(broadcast: every host of the LAN receives it) is answered again, from any source, until it is 90s old\n" +
			"(token age 60s + clock skew 30s), so encrypted mode stops only senders that never saw a valid probe.",
		Flags: append(keyFlags(schema, config.GroupGlobal), []cli.Flag{
			&cli.StringFlag{Name: "ip", Value: "auto", Usage: "IPv4 address to advertise, or auto"},
			&cli.UintFlag{Name: "app-port", Usage: "port to append to the reply (0: none, as the stock server)"},
			&cli.UintFlag{Name: "port", Value: uint(def.Port), Usage: "UDP port to listen on"},
			&cli.StringFlag{Name: "bind", Value: "0.0.0.0", Usage: "address to listen on"},
			&cli.StringFlag{Name: "message", Value: string(def.Message), Usage: "probe payload to answer"},
			&cli.StringFlag{Name: "response-prefix", Value: string(def.Prefix), Usage: "reply prefix"},
			&cli.StringFlag{Name: "secret-key", Usage: "Fernet key: encrypted mode", EnvVars: []string{"DISCOVERY_SECRET_KEY"}},
			&cli.StringFlag{Name: "secret-key-file", Usage: "file holding the Fernet key"},
			&cli.IntFlag{Name: "replies", Value: 1, Usage: "distinct replies per probe (IP, IP+1, ...), for load tests"},
			&cli.Float64Flag{Name: "rate-limit", Value: 5, Usage: "probes answered per second per source address, after --burst; more are dropped and counted (0: no limit, for load tests)"},
			&cli.IntFlag{Name: "burst", Value: 20, Usage: "probes answered at once per source address before --rate-limit applies (a round sends up to 4)"},
			&cli.Float64Flag{Name: "global-rate-limit", Value: 100, Usage: "replies per second over all source addresses, after --global-burst; probes over it are dropped and counted (0: no limit, for load tests). Counts replies: a probe costs --replies. A bridge's round sends up to 4 probes, every 10s by default: 100/s answers about 250 such bridges, the burst 50 rounds at once"},
			&cli.IntFlag{Name: "global-burst", Value: 200, Usage: "replies sent at once over all source addresses before --global-rate-limit applies; at least --replies"},
		}...),
		Action: func(c *cli.Context) error {
			ip, err := advertisedIP(c.String("ip"))
			if err != nil {
				return usageErr(err)
			}
			if c.Uint("port") < 1 || c.Uint("port") > 65535 {
				return usageErr(fmt.Errorf("--port: bad value %d: want 1..65535", c.Uint("port")))
			}
			if c.Uint("app-port") > 65535 {
				return usageErr(fmt.Errorf("--app-port: bad value %d: want 1..65535 (0: none)", c.Uint("app-port")))
			}
			if n := c.Int("replies"); n < 1 || n > 1_000_000 {
				return usageErr(fmt.Errorf("--replies: bad value %d: want 1..1000000", n))
			}
			if v := c.Float64("rate-limit"); v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return usageErr(fmt.Errorf("--rate-limit: bad value %v: want >= 0 (0: no limit)", v))
			}
			if n := c.Int("burst"); n < 1 {
				return usageErr(fmt.Errorf("--burst: bad value %d: want >= 1", n))
			}
			if v := c.Float64("global-rate-limit"); v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return usageErr(fmt.Errorf("--global-rate-limit: bad value %v: want >= 0 (0: no limit)", v))
			}
			if n := c.Int("global-burst"); n < 1 {
				return usageErr(fmt.Errorf("--global-burst: bad value %d: want >= 1", n))
			}
			if g, n := c.Int("global-burst"), c.Int("replies"); c.Float64("global-rate-limit") > 0 && n > g {
				return usageErr(fmt.Errorf("--global-burst: bad value %d: below --replies %d, so no probe could be answered; raise it, or set --global-rate-limit 0 (no limit, for load tests)", g, n))
			}
			log := flagLogger(c, schema)
			key, err := responderKey(c)
			if err != nil {
				return usageErr(err)
			}
			nets := &hostNetworks{lister: iface.OS()}
			if err := nets.refresh(); err != nil {
				return runtimeErr(err)
			}
			r := &discover.Responder{
				Message: []byte(c.String("message")), Prefix: []byte(c.String("response-prefix")),
				IP: ip, AppPort: uint16(c.Uint("app-port")), Key: key, Replies: c.Int("replies"),
				Rate: c.Float64("rate-limit"), Burst: c.Int("burst"),
				GlobalRate: c.Float64("global-rate-limit"), GlobalBurst: c.Int("global-burst"),
				Networks: nets.Get,
				Log:      log, Clock: clock.Real(),
			}
			addr := net.JoinHostPort(c.String("bind"), strconv.FormatUint(uint64(c.Uint("port")), 10))
			conn, err := discover.ListenResponder(c.Context, addr)
			if err != nil {
				return runtimeErr(err)
			}
			defer conn.Close()
			log.Info().Str("listen", addr).Str("ip", ip.String()).Uint("app_port", c.Uint("app-port")).
				Bool("encrypted", key != nil).Int("replies", r.Replies).Float64("rate_limit", r.Rate).Int("burst", r.Burst).
				Float64("global_rate_limit", r.GlobalRate).Int("global_burst", r.GlobalBurst).
				Strs("host_networks", prefixStrings(nets.Get())).
				Msg("responding to discovery probes")
			go nets.watch(c.Context, clock.Real(), respondLogEvery, log)
			go logDropped(c.Context, clock.Real(), respondLogEvery, r, log)
			if err := r.Serve(c.Context, conn); err != nil {
				return runtimeErr(err)
			}
			st := stats(r)
			ev := log.Info().Uint64("dropped", st.dropped).Uint64("dropped_global", st.droppedGlobal).Uint64("refused", st.refusedTotal())
			for _, w := range discover.ProbeRefusals() {
				if st.refused[w] != 0 {
					ev = ev.Uint64("refused_"+w.String(), st.refused[w])
				}
			}
			ev.Msg("responder stopped")
			return nil
		},
	}
}

// respondLogEvery is how often respond logs what it refused and dropped,
// and re-reads the host's networks.
const respondLogEvery = 10 * time.Second

// respondStats is a snapshot of a Responder's counters.
type respondStats struct {
	dropped, droppedGlobal uint64
	refused                map[discover.ProbeRefusal]uint64
}

func stats(r *discover.Responder) respondStats {
	st := respondStats{dropped: r.Dropped(), droppedGlobal: r.DroppedGlobal(), refused: map[discover.ProbeRefusal]uint64{}}
	for _, w := range discover.ProbeRefusals() {
		st.refused[w] = r.Refused(w)
	}
	return st
}

func (s respondStats) refusedTotal() uint64 {
	var n uint64
	for _, v := range s.refused {
		n += v
	}
	return n
}

// logDropped logs, every period in which there were some, how many probes
// the per-source limit and the global budget dropped and how many were
// refused for their source address (by reason), until ctx ends. Each probe
// is logged by the Responder at debug.
func logDropped(ctx context.Context, clk clock.Clock, every time.Duration, r *discover.Responder, log zerolog.Logger) {
	var last respondStats // zero: counts since r started
	for clock.Sleep(clk, every, ctx.Done()) {
		now := stats(r)
		if n := now.dropped - last.dropped; n != 0 {
			log.Warn().Uint64("dropped", n).Uint64("dropped_total", now.dropped).Msg("probes over --rate-limit dropped")
		}
		if n := now.droppedGlobal - last.droppedGlobal; n != 0 {
			log.Warn().Uint64("dropped_global", n).Uint64("dropped_global_total", now.droppedGlobal).Msg("probes over --global-rate-limit dropped")
		}
		if n := now.refusedTotal() - last.refusedTotal(); n != 0 {
			ev := log.Warn().Uint64("refused", n).Uint64("refused_total", now.refusedTotal())
			for _, w := range discover.ProbeRefusals() {
				if d := now.refused[w] - last.refused[w]; d != 0 {
					ev = ev.Uint64("refused_"+w.String(), d)
				}
			}
			ev.Msg("probes refused for their source address")
		}
		last = now
	}
}

// hostNetworks holds the host's IPv4 networks for Responder.Networks; Get
// is safe to call while watch refreshes them.
type hostNetworks struct {
	lister iface.Lister
	p      atomic.Pointer[[]netip.Prefix]
}

// Get returns the networks of the last successful refresh.
func (h *hostNetworks) Get() []netip.Prefix {
	if p := h.p.Load(); p != nil {
		return *p
	}
	return nil
}

// refresh lists the host's interfaces and keeps their IPv4 prefixes, up or
// down (a down interface's broadcast address is no bridge's either),
// sorted and without duplicates.
func (h *hostNetworks) refresh() error {
	all, err := h.lister.Interfaces()
	if err != nil {
		return fmt.Errorf("list the host's networks: %w", err)
	}
	var ps []netip.Prefix
	for _, i := range all {
		if i.Prefix.IsValid() && i.Prefix.Addr().Is4() {
			ps = append(ps, i.Prefix.Masked())
		}
	}
	slices.SortFunc(ps, netip.Prefix.Compare)
	ps = slices.Compact(ps)
	h.p.Store(&ps)
	return nil
}

// watch refreshes the networks every period until ctx ends. It logs a
// change of networks, the first failure of a run of failures (keeping the
// last networks listed) and the recovery.
func (h *hostNetworks) watch(ctx context.Context, clk clock.Clock, every time.Duration, log zerolog.Logger) {
	failing := false
	for clock.Sleep(clk, every, ctx.Done()) {
		before := h.Get()
		if err := h.refresh(); err != nil {
			if !failing {
				log.Warn().Err(err).Strs("host_networks", prefixStrings(before)).Msg("host networks not refreshed: refusing probes from the last ones listed")
			}
			failing = true
			continue
		}
		if failing {
			log.Info().Msg("host networks listed again")
			failing = false
		}
		if after := h.Get(); !slices.Equal(before, after) {
			log.Info().Strs("host_networks", prefixStrings(after)).Strs("was", prefixStrings(before)).Msg("host networks changed")
		}
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func responderKey(c *cli.Context) (*discover.Key, error) {
	text := c.String("secret-key")
	if f := c.String("secret-key-file"); f != "" {
		if text != "" {
			return nil, fmt.Errorf("--secret-key and --secret-key-file: set one, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--secret-key-file: %w", err)
		}
		text = strings.TrimSpace(string(b))
	}
	if text == "" {
		return nil, nil
	}
	k, err := discover.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("--secret-key: %w", err)
	}
	return k, nil
}

// advertisedIP resolves --ip. "auto" asks the routing table for the source
// address towards a documentation address (connecting a UDP socket sends no
// packet); with no default route it is 127.0.0.1, as the stock server.
func advertisedIP(s string) (netip.Addr, error) {
	if s != "auto" {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is4() {
			return netip.Addr{}, fmt.Errorf("--ip: bad value %q: want an IPv4 address or auto", s)
		}
		return ip, nil
	}
	conn, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	return ap.Addr(), nil
}
