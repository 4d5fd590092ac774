package discover

import (
	"context"

	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

// Discover runs one discovery round on the host's interfaces (iface.OS,
// chosen by the interface rules of opts: Whitelist, Blacklist,
// InterfaceRegex, ...) and returns the servers
// that answered, in order of first arrival, deduplicated by (IP, Port). It
// is upstream's discover(config): the round ends at opts.Timeout (a
// deadline for the whole round, not upstream's idle timeout), at ctx's
// deadline if earlier, or once opts.Settle has passed without a new server.
// opts.One is ignored; DiscoverOne is the call that stops at the first
// reply. Logs go to opts.Logger (nil: none).
//
// Finding nothing is not an error: Discover returns no servers and nil.
// Invalid opts are an error naming every bad field by its upstream key
// ("timeout: must be > 0, got 0s"), before anything is sent. A round that
// could not probe returns an error wrapping ErrNoInterfaces (no interface
// selected) or ErrNoProbeSent (every send failed); a cancelled ctx returns
// the servers found so far with ctx's error.
//
// For the interfaces probed, reply statistics, a fake interface list or
// repeated rounds with one logger, use New and Client.Round.
func Discover(ctx context.Context, opts Options) ([]Server, error) {
	return discover(ctx, opts, iface.OS(), nil)
}

// DiscoverOne is upstream's discover_one(config): a round like Discover's
// that ends as soon as the first valid reply arrives (within a millisecond
// of it), where upstream waits the whole timeout. ok is false, with a nil
// error, when no server answered before opts.Timeout. Errors are
// Discover's.
func DiscoverOne(ctx context.Context, opts Options) (s Server, ok bool, err error) {
	return discoverOne(ctx, opts, iface.OS(), nil)
}

// SelectInterfaces returns the interfaces Discover would probe with opts
// (upstream's select_interfaces(config)): the host's active, non-loopback
// IPv4 addresses that have a broadcast domain (not /31 or /32), then only
// those in opts.Whitelist if it is set, then without those in
// opts.Blacklist, with the other interface rules of opts applied in the
// order of iface.Rules. None left is an error wrapping ErrNoInterfaces that
// lists what the host has and why each was skipped.
func SelectInterfaces(opts Options) ([]iface.Interface, error) {
	c, err := New(opts, iface.OS(), opts.Logger, nil)
	if err != nil {
		return nil, err
	}
	return c.Selected()
}

// discover and discoverOne are Discover and DiscoverOne on any lister
// (tests and benchmarks give them interfaces whose "broadcast" is a
// loopback address); prepare, when not nil, is given the Client before its
// round (tests set its hooks).
func discover(ctx context.Context, opts Options, lister iface.Lister, prepare func(*Client)) ([]Server, error) {
	opts.One = false
	return runOnce(ctx, opts, lister, prepare)
}

func discoverOne(ctx context.Context, opts Options, lister iface.Lister, prepare func(*Client)) (Server, bool, error) {
	opts.One = true
	servers, err := runOnce(ctx, opts, lister, prepare)
	if len(servers) == 0 {
		return Server{}, false, err
	}
	return servers[0], true, err
}

func runOnce(ctx context.Context, opts Options, lister iface.Lister, prepare func(*Client)) ([]Server, error) {
	c, err := New(opts, lister, opts.Logger, nil)
	if err != nil {
		return nil, err
	}
	if prepare != nil {
		prepare(c)
	}
	res, err := c.Round(ctx)
	return res.Servers, err
}
