package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/config"
	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func interfacesCommand(schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "interfaces",
		Usage: "list the interfaces discovery would use and why each other one is skipped, with the segmented-network diagnosis",
		Description: "Applies the interface rules in their order (usable, broadcast domain, interfaces_whitelist,\n" +
			"interfaces_regex, interfaces_cidrs, interfaces_can_reach, interfaces_blacklist, interfaces_skip_regex,\n" +
			"interfaces_skip_container) and prints, for every IPv4 address, the rule that took or skipped it.",
		Flags: append(keyFlags(schema, config.GroupDiscovery),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c, schema)
			if err != nil {
				return err
			}
			_, ds, err := interfaceDecisions(cfg)
			if err != nil {
				return err
			}
			sel := iface.Taken(ds)
			report := interfacesReport{Interfaces: describeInterfaces(ds), Skipped: describeSkipped(ds), Segmented: iface.Diagnose(sel)}
			if report.Segmented == nil {
				report.Segmented = []cidr.Segmentation{}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(report); err != nil {
					return runtimeErr(err)
				}
			} else if err := report.print(c.App.Writer); err != nil {
				return runtimeErr(err)
			}
			if len(sel) == 0 {
				return quietExit(exitNone)
			}
			return nil
		},
	}
}

// interfaceView is one address discovery probes, and the rule that took it.
type interfaceView struct {
	Name            string `json:"name"`
	IP              string `json:"ip"`
	Netmask         string `json:"netmask"`
	Prefix          int    `json:"prefix"`
	Network         string `json:"network"`
	Broadcast       string `json:"broadcast"`
	BroadcastFromOS bool   `json:"broadcast_from_os"`
	Rule            string `json:"rule"`
	Reason          string `json:"reason"`
}

// skippedView is one address discovery does not probe, and why.
type skippedView struct {
	Name    string `json:"name"`
	IP      string `json:"ip"`
	Network string `json:"network"`
	Rule    string `json:"rule"`
	Reason  string `json:"reason"`
}

type interfacesReport struct {
	Interfaces []interfaceView     `json:"interfaces"`
	Skipped    []skippedView       `json:"skipped"`
	Segmented  []cidr.Segmentation `json:"segmented"`
}

func describeInterfaces(ds []iface.Decision) []interfaceView {
	out := make([]interfaceView, 0, len(ds))
	for _, d := range ds {
		if !d.Taken {
			continue
		}
		mask, _ := cidr.MaskFromPrefixLen(d.Prefix.Bits())
		out = append(out, interfaceView{
			Name: d.Name, IP: d.Addr.String(), Netmask: mask.String(), Prefix: d.Prefix.Bits(),
			Network: d.Prefix.String(), Broadcast: d.Broadcast.String(), BroadcastFromOS: d.BroadcastFromOS,
			Rule: d.Rule, Reason: d.Reason,
		})
	}
	return out
}

func describeSkipped(ds []iface.Decision) []skippedView {
	out := make([]skippedView, 0, len(ds))
	for _, d := range ds {
		if d.Taken {
			continue
		}
		network := ""
		if d.Prefix.IsValid() {
			network = d.Prefix.String()
		}
		out = append(out, skippedView{Name: d.Name, IP: d.Addr.String(), Network: network, Rule: d.Rule, Reason: d.Reason})
	}
	return out
}

func (r interfacesReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Interfaces) == 0 {
		fmt.Fprintln(tw, "no usable interface: every address is skipped (below)")
	} else {
		fmt.Fprintln(tw, "NAME\tIP\tNETMASK\tPREFIX\tBROADCAST\tFROM OS\tTAKEN BY\tWHY")
		for _, in := range r.Interfaces {
			fmt.Fprintf(tw, "%s\t%s\t%s\t/%d\t%s\t%v\t%s\t%s\n", in.Name, in.IP, in.Netmask, in.Prefix, in.Broadcast, in.BroadcastFromOS, in.Rule, in.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintln(w, "\nskipped:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tIP\tNETWORK\tSKIPPED BY\tWHY")
		for _, s := range r.Skipped {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.IP, s.Network, s.Rule, s.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, s := range r.Segmented {
		fmt.Fprintf(w, "\nsegmented network? %s\n", s.Advice())
	}
	return nil
}
