package iface

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// Rules choose the interfaces discovery probes, the way node agents choose
// theirs (Calico's IP_AUTODETECTION_METHOD, flannel's --iface*). The zero
// Rules select what the upstream client selects, minus addresses with no
// broadcast domain. Every rule is a filter on the addresses left by the
// ones before it, so the result does not depend on their order; the order
// (the one listed here, which Decide applies) only decides which rule a
// skipped address is reported under:
//
//  1. the address must be usable: up, not loopback, IPv4;
//  2. it must have a broadcast domain: a /31 or /32 has none, its
//     "broadcast" would be a unicast (to a ClusterIP on kube-ipvs0);
//  3. Whitelist (interfaces_whitelist): exact names, when set;
//  4. Regex (interfaces_regex): the whole name matches, when set;
//  5. CIDRs (interfaces_cidrs): the address is inside one, when set;
//  6. CanReach (interfaces_can_reach): the interface the kernel routes
//     that address through, when set;
//  7. Blacklist (interfaces_blacklist): exact names;
//  8. SkipRegex (interfaces_skip_regex): the whole name matches;
//  9. SkipContainer (interfaces_skip_container): container, CNI and
//     cluster-internal interfaces (ContainerInterface).
type Rules struct {
	Whitelist     []string
	Blacklist     []string
	Regex         string
	SkipRegex     string
	CIDRs         []netip.Prefix
	CanReach      netip.Addr
	SkipContainer bool
}

// Rule names a rule in a Decision: the configuration key of the rule, or
// one of the built-in rules below.
const (
	RuleDown        = "down"
	RuleLoopback    = "loopback"
	RuleNotIPv4     = "not_ipv4"
	RuleNoBroadcast = "no_broadcast_domain"
	RuleDefault     = "default" // taken: usable, with a broadcast domain, no rule said no

	RuleWhitelist     = "interfaces_whitelist"
	RuleRegex         = "interfaces_regex"
	RuleCIDRs         = "interfaces_cidrs"
	RuleCanReach      = "interfaces_can_reach"
	RuleBlacklist     = "interfaces_blacklist"
	RuleSkipRegex     = "interfaces_skip_regex"
	RuleSkipContainer = "interfaces_skip_container"
)

// Decision is what the rules made of one interface address: taken or
// skipped, under which rule and why. For a skipped address Rule is the
// first rule that rejected it; for a taken one, the last rule that chose
// it (RuleDefault when no selecting rule is set) and Reason lists every
// selecting rule it passed.
type Decision struct {
	Interface
	Taken  bool   `json:"taken"`
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Route is the kernel's answer to "how is dst reached": the outgoing
// interface (Index and Name, either may be unknown) and the source address
// it would use.
type Route struct {
	Dst   netip.Addr
	Index int
	Name  string
	Src   netip.Addr
}

// Router looks up the route to an address without sending anything.
type Router interface {
	Route(dst netip.Addr) (Route, error)
}

// RouterFunc adapts a function to Router.
type RouterFunc func(dst netip.Addr) (Route, error)

// Route calls f.
func (f RouterFunc) Route(dst netip.Addr) (Route, error) { return f(dst) }

// Selector is a compiled set of Rules.
type Selector struct {
	r                Rules
	regex, skipRegex *regexp.Regexp
}

// CompilePattern compiles an interface-name pattern (RE2 syntax) that must
// match the whole name: "eth[0-9]+" matches eth0 but not veth0 (Calico and
// flannel match anywhere in the name; write "eth.*" for their "eth"). Use
// | for alternatives: "eth[0-9]+|ens[0-9]+|bond[0-9]+(\.[0-9]+)?".
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	// Compiled alone first, so that its errors are the plain pattern's.
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, err
	}
	// Anchored on its syntax tree, not by text: "a)|(b" must not anchor
	// half-way, and `\Q...` quotes to the end of the text, so a suffix
	// appended to it would be quoted too.
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, err
	}
	anchored := &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{
		{Op: syntax.OpBeginText}, re, {Op: syntax.OpEndText},
	}}
	return regexp.Compile(anchored.String())
}

// Compile checks r and returns its Selector. Errors name the key and the
// bad value: `interfaces_regex: bad pattern "eth[": error parsing regexp: ...`.
func (r Rules) Compile() (*Selector, error) {
	s := &Selector{r: r}
	s.r.Whitelist = slices.Clone(r.Whitelist)
	s.r.Blacklist = slices.Clone(r.Blacklist)
	s.r.CIDRs = slices.Clone(r.CIDRs)
	var errs []error
	var err error
	if r.Regex != "" {
		if s.regex, err = CompilePattern(r.Regex); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad pattern %q: %w", RuleRegex, r.Regex, err))
		}
	}
	if r.SkipRegex != "" {
		if s.skipRegex, err = CompilePattern(r.SkipRegex); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad pattern %q: %w", RuleSkipRegex, r.SkipRegex, err))
		}
	}
	for i, p := range r.CIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s: %s is not an IPv4 network", RuleCIDRs, p))
			continue
		}
		s.r.CIDRs[i] = p.Masked()
	}
	if r.CanReach.IsValid() && !r.CanReach.Unmap().Is4() {
		errs = append(errs, fmt.Errorf("%s: %s is not an IPv4 address", RuleCanReach, r.CanReach))
	}
	s.r.CanReach = r.CanReach.Unmap()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Rules returns the rules s was compiled from.
func (s *Selector) Rules() Rules { return s.r }

// Decide applies the rules to all, in order, and returns one Decision per
// address of all, in all's order. With CanReach set it asks router for the
// route first (nothing is sent); when the lookup fails every address is
// skipped under interfaces_can_reach with the error as reason.
func (s *Selector) Decide(all []Interface, router Router) []Decision {
	var reach string // name of the interface that reaches CanReach
	var reachErr error
	if s.r.CanReach.IsValid() {
		if router == nil {
			reachErr = errors.New("no route lookup available")
		} else if rt, err := router.Route(s.r.CanReach); err != nil {
			reachErr = err
		} else if reach = routeName(all, rt); reach == "" {
			reachErr = fmt.Errorf("the route (interface index %d, source %s) leaves through no listed interface", rt.Index, rt.Src)
		}
	}
	out := make([]Decision, 0, len(all))
	for _, i := range all {
		out = append(out, s.decide(i, reach, reachErr))
	}
	return out
}

// routeName is the name of the interface rt leaves through: rt.Name, else
// the interface with rt.Index, else the one holding rt.Src.
func routeName(all []Interface, rt Route) string {
	if rt.Name != "" {
		return rt.Name
	}
	if rt.Index > 0 {
		if k := slices.IndexFunc(all, func(i Interface) bool { return i.Index == rt.Index }); k >= 0 {
			return all[k].Name
		}
	}
	if rt.Src.IsValid() {
		if k := slices.IndexFunc(all, func(i Interface) bool { return i.Addr == rt.Src }); k >= 0 {
			return all[k].Name
		}
	}
	return ""
}

func (s *Selector) decide(i Interface, reach string, reachErr error) Decision {
	skip := func(rule, why string) Decision { return Decision{Interface: i, Rule: rule, Reason: why} }
	switch {
	case !i.Up:
		return skip(RuleDown, "interface is down")
	case i.Loopback:
		return skip(RuleLoopback, "loopback interface")
	case !i.Addr.Is4():
		return skip(RuleNotIPv4, "no IPv4 address")
	case !i.Prefix.IsValid():
		return skip(RuleNoBroadcast, "address has no network prefix, so no broadcast domain")
	case i.Prefix.Bits() >= 31:
		return skip(RuleNoBroadcast, fmt.Sprintf("/%d address has no broadcast domain (a probe would be a unicast to %s)", i.Prefix.Bits(), i.Addr))
	}
	var chose []string
	rule := RuleDefault
	took := func(r, why string) { rule = r; chose = append(chose, why) }
	r := s.r
	if len(r.Whitelist) > 0 {
		if !slices.Contains(r.Whitelist, i.Name) {
			return skip(RuleWhitelist, fmt.Sprintf("not in interfaces_whitelist %q", r.Whitelist))
		}
		took(RuleWhitelist, "in interfaces_whitelist")
	}
	if s.regex != nil {
		if !s.regex.MatchString(i.Name) {
			return skip(RuleRegex, fmt.Sprintf("name does not match interfaces_regex %q", r.Regex))
		}
		took(RuleRegex, fmt.Sprintf("name matches interfaces_regex %q", r.Regex))
	}
	if len(r.CIDRs) > 0 {
		k := slices.IndexFunc(r.CIDRs, func(p netip.Prefix) bool { return p.Contains(i.Addr) })
		if k < 0 {
			return skip(RuleCIDRs, fmt.Sprintf("%s is in none of interfaces_cidrs %s", i.Addr, prefixes(r.CIDRs)))
		}
		took(RuleCIDRs, fmt.Sprintf("%s is in interfaces_cidrs %s", i.Addr, r.CIDRs[k]))
	}
	if r.CanReach.IsValid() {
		switch {
		case reachErr != nil:
			return skip(RuleCanReach, fmt.Sprintf("route to interfaces_can_reach %s: %v", r.CanReach, reachErr))
		case i.Name != reach:
			return skip(RuleCanReach, fmt.Sprintf("interfaces_can_reach %s is reached through %s", r.CanReach, reach))
		}
		took(RuleCanReach, fmt.Sprintf("reaches interfaces_can_reach %s", r.CanReach))
	}
	if slices.Contains(r.Blacklist, i.Name) {
		return skip(RuleBlacklist, "in interfaces_blacklist")
	}
	if s.skipRegex != nil && s.skipRegex.MatchString(i.Name) {
		return skip(RuleSkipRegex, fmt.Sprintf("name matches interfaces_skip_regex %q", r.SkipRegex))
	}
	if r.SkipContainer {
		if what, ok := ContainerInterface(i.Name); ok {
			return skip(RuleSkipContainer, "container/CNI interface: "+what)
		}
	}
	if len(chose) == 0 {
		chose = append(chose, "up, IPv4, with a broadcast domain; no selecting rule set")
	}
	return Decision{Interface: i, Taken: true, Rule: rule, Reason: strings.Join(chose, "; ")}
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Taken returns the interfaces of the decisions that were taken, in order.
func Taken(ds []Decision) []Interface {
	var out []Interface
	for _, d := range ds {
		if d.Taken {
			out = append(out, d.Interface)
		}
	}
	return out
}
