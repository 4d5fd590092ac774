package discover

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Client runs discovery rounds. It is safe for concurrent use, though rounds
// are normally run one after another; each round uses its own socket.
type Client struct {
	opts   Options // validated, defaults filled in
	lister iface.Lister
	sel    *iface.Selector // opts' interface rules, compiled
	router iface.Router    // route lookups for InterfaceCanReach
	log    logger
	clock  clock.Clock // stamps results and judges token age; see socketNow

	mu          sync.Mutex
	policyNotes map[[2]netip.Addr]struct{} // (payload, source) pairs already logged
	diagnosed   bool                       // segmented-network warning given
	scan        scanCursor                 // the rolling scan's position, across rounds
	keepAlive   []netip.AddrPort           // servers to keep alive (KeepAlive)
	// refusing are the (source, reason) pairs the last round refused;
	// refusalEpisode whether it refused anything, refusalsWarned how many
	// pairs the current episode logged at warn (noteRefusals).
	refusing       map[refusalNote]struct{}
	refusalEpisode bool
	refusalsWarned int
	// refusalsOverflowed: the current episode said that further pairs
	// are logged at debug.
	refusalsOverflowed bool

	// neigh reads the kernel's neighbour-table settings (tests replace it).
	neigh func() NeighParams

	// sendHook, when set (tests), replaces the socket write of every probe.
	sendHook func(conn *net.UDPConn, b []byte, dst netip.AddrPort) error
	// retryClock, when set (tests), makes the retries' timers, so a test
	// sends each retry when it chooses; nil is the real clock.
	retryClock clock.Clock
	// settleClock, when set (tests), times Settle's quiet period, so a
	// test ends a settling round when it chooses; nil is the real clock.
	settleClock clock.Clock
	// readHook, when set (tests), is called on the receiving goroutine
	// after each datagram a round reads has been handled.
	readHook func()
}

// New validates opts, fills in the defaults of zero MaxDatagram,
// RecvBuffer, MaxTokenAge, ClockSkew, MaxServersPerSource and
// AdvertisedAddresses, and returns a Client listing
// interfaces with lister. clk (the real clock if nil) stamps Result.Started,
// Result.Duration and Server.Received and judges Fernet token ages; socket
// deadlines and the pacing measured against them always use the real clock.
// The Client logs to log (nil: nowhere); opts.Logger is for Discover,
// DiscoverOne and SelectInterfaces only.
// All problems are reported at once (errors.Join), each naming its config
// key and value, e.g. "timeout: must be > 0, got -1s".
func New(opts Options, lister iface.Lister, log *slog.Logger, clk clock.Clock) (*Client, error) {
	opts = withDefaults(opts)
	var problems []error
	if lister == nil {
		problems = append(problems, errors.New("lister: must not be nil"))
	}
	if err := errors.Join(append(problems, validate(opts))...); err != nil {
		return nil, err
	}
	opts.Message = slices.Clone(opts.Message)
	opts.Prefix = slices.Clone(opts.Prefix)
	opts.ScanCIDRs = slices.Clone(opts.ScanCIDRs)
	opts.Whitelist = slices.Clone(opts.Whitelist)
	opts.Blacklist = slices.Clone(opts.Blacklist)
	opts.InterfaceCIDRs = slices.Clone(opts.InterfaceCIDRs)
	sel, err := opts.InterfaceRules().Compile()
	if err != nil { // validate compiled them already
		return nil, err
	}
	// A lister that also looks up routes (a test's fake network) answers
	// InterfaceCanReach for its own interfaces; otherwise the OS does.
	router, ok := lister.(iface.Router)
	if !ok {
		router = iface.OSRouter()
	}
	return &Client{opts: opts, lister: lister, sel: sel, router: router, log: newLogger(log), clock: clock.OrReal(clk),
		scan: newScanCursor(opts.ScanCIDRs), neigh: ReadNeighParams}, nil
}

// withDefaults fills in the defaults of zero MaxDatagram, RecvBuffer,
// MaxTokenAge, ClockSkew, MaxServersPerSource and AdvertisedAddresses.
func withDefaults(o Options) Options {
	if o.MaxDatagram == 0 {
		o.MaxDatagram = DefaultMaxDatagram
	}
	if o.RecvBuffer == 0 {
		o.RecvBuffer = DefaultRecvBuffer
	}
	if o.MaxTokenAge == 0 {
		o.MaxTokenAge = DefaultMaxTokenAge
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.MaxServersPerSource == 0 {
		o.MaxServersPerSource = DefaultMaxServersPerSource
	}
	if o.AdvertisedAddresses == "" {
		o.AdvertisedAddresses = AdvertisedLocal
	}
	return o
}

// validate returns every problem with o at once, each naming its config key.
// The bounds of every key are those of Keys, the ones the bridge command
// and LoadOptions apply to a file, a flag or a variable: a Go program that
// builds Options in code gets the same refusals instead of a round that
// misbehaves. LoadOptions runs it too, after the environment and the
// overrides are applied.
func validate(o Options) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	for _, f := range fields {
		if f.get == nil {
			continue
		}
		v := f.get(o)
		if err := f.Check(v); err != nil {
			switch t := v.(type) {
			case int:
				if f.Name == "scan_rate" { // used only by a subnet scan
					if o.SubnetScan && len(o.ScanCIDRs) > 0 {
						bad(f.Name, "%v when scanning, got %d", err, t)
					}
					continue
				}
				bad(f.Name, "%v, got %d", err, t)
			case string:
				if t == "" && f.NonEmpty {
					bad(f.Name, "%v", err)
				} else {
					bad(f.Name, "%v, got %q", err, t)
				}
			default:
				bad(f.Name, "%v, got %v", err, v)
			}
		}
	}
	switch {
	case o.Key == nil && len(o.Message) > maxUDPPayload:
		bad("discovery_message", "must be at most %d bytes, got %d", maxUDPPayload, len(o.Message))
	case o.Key != nil && fernetTextLen(len(o.Message)) > maxUDPPayload:
		bad("discovery_message", "its Fernet token must fit one datagram (%d bytes), got a %d-byte message", maxUDPPayload, len(o.Message))
	}
	var total uint64
	for _, p := range o.ScanCIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			bad("scan_cidrs", "%s is not an IPv4 network", p)
			continue
		}
		n := cidr.HostCount(p)
		total += n
		if n > MaxScanHosts {
			bad("scan_cidrs", "%s has %d hosts, more than the limit of %d per round", p, n, MaxScanHosts)
		}
	}
	if total > MaxScanHosts && len(o.ScanCIDRs) > 1 {
		bad("scan_cidrs", "%d hosts in %d networks, more than the limit of %d per round", total, len(o.ScanCIDRs), MaxScanHosts)
	}
	if o.MaxDatagram < 0 || o.MaxDatagram > maxUDPPayload {
		bad("max_datagram", "must be 1..%d, got %d", maxUDPPayload, o.MaxDatagram)
	}
	if o.RecvBuffer < 0 {
		bad("recv_buffer", "must be >= 0, got %d", o.RecvBuffer)
	}
	if _, err := o.InterfaceRules().Compile(); err != nil {
		errs = append(errs, err) // each names its key: "interfaces_regex: bad pattern ..."
	}
	return errors.Join(errs...)
}

// Options returns the validated options with defaults filled in.
func (c *Client) Options() Options { return c.opts }
