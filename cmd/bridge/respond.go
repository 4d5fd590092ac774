package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/discover"
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
			"A probe's source address can be forged and a reply is bigger than the probe: each source is answered at most\n" +
			"--rate-limit times a second (after a burst of --burst); the probes dropped are counted and logged every 10s and at exit.",
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
			log := flagLogger(c, schema)
			key, err := responderKey(c)
			if err != nil {
				return usageErr(err)
			}
			r := &discover.Responder{
				Message: []byte(c.String("message")), Prefix: []byte(c.String("response-prefix")),
				IP: ip, AppPort: uint16(c.Uint("app-port")), Key: key, Replies: c.Int("replies"),
				Rate: c.Float64("rate-limit"), Burst: c.Int("burst"),
				Log: log, Clock: clock.Real(),
			}
			addr := net.JoinHostPort(c.String("bind"), strconv.FormatUint(uint64(c.Uint("port")), 10))
			conn, err := discover.ListenResponder(c.Context, addr)
			if err != nil {
				return runtimeErr(err)
			}
			defer conn.Close()
			log.Info().Str("listen", addr).Str("ip", ip.String()).Uint("app_port", c.Uint("app-port")).
				Bool("encrypted", key != nil).Int("replies", r.Replies).Float64("rate_limit", r.Rate).Int("burst", r.Burst).
				Msg("responding to discovery probes")
			go logDropped(c.Context, r, log)
			if err := r.Serve(c.Context, conn); err != nil {
				return runtimeErr(err)
			}
			log.Info().Uint64("dropped", r.Dropped()).Msg("responder stopped")
			return nil
		},
	}
}

// logDropped logs, every 10 s in which some were dropped, how many probes
// the rate limit dropped, until ctx ends.
func logDropped(ctx context.Context, r *discover.Responder, log zerolog.Logger) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := r.Dropped(); n != last {
				log.Warn().Uint64("dropped", n-last).Uint64("dropped_total", n).Msg("probes over --rate-limit dropped")
				last = n
			}
		}
	}
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
