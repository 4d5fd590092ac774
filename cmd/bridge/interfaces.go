package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/pkg/cidr"
	"github.com/udp-discovery-bridge/bridge/pkg/config"
	"github.com/udp-discovery-bridge/bridge/pkg/iface"
)

func interfacesCommand(schema *config.Schema) *cli.Command {
	return &cli.Command{
		Name:  "interfaces",
		Usage: "list the interfaces discovery would use, with the segmented-network diagnosis",
		Flags: append(keyFlags(schema, config.GroupDiscovery),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		),
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c, schema)
			if err != nil {
				return err
			}
			all, err := iface.OS().Interfaces()
			if err != nil {
				return runtimeErr(fmt.Errorf("list interfaces: %w", err))
			}
			sel := iface.Select(all, cfg.Whitelist, cfg.Blacklist)
			report := interfacesReport{Interfaces: describeInterfaces(sel), Segmented: iface.Diagnose(sel)}
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

type interfaceView struct {
	Name            string `json:"name"`
	IP              string `json:"ip"`
	Netmask         string `json:"netmask"`
	Prefix          int    `json:"prefix"`
	Network         string `json:"network"`
	Broadcast       string `json:"broadcast"`
	BroadcastFromOS bool   `json:"broadcast_from_os"`
}

type interfacesReport struct {
	Interfaces []interfaceView     `json:"interfaces"`
	Segmented  []cidr.Segmentation `json:"segmented"`
}

func describeInterfaces(ifs []iface.Interface) []interfaceView {
	out := make([]interfaceView, 0, len(ifs))
	for _, in := range ifs {
		mask, _ := cidr.MaskFromPrefixLen(in.Prefix.Bits())
		out = append(out, interfaceView{
			Name: in.Name, IP: in.Addr.String(), Netmask: mask.String(), Prefix: in.Prefix.Bits(),
			Network: in.Prefix.String(), Broadcast: in.Broadcast.String(), BroadcastFromOS: in.BroadcastFromOS,
		})
	}
	return out
}

func (r interfacesReport) print(w io.Writer) error {
	if len(r.Interfaces) == 0 {
		fmt.Fprintln(w, "no usable interface: none is up with an IPv4 address, or the whitelist/blacklist excludes them all")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tIP\tNETMASK\tPREFIX\tBROADCAST\tFROM OS")
		for _, in := range r.Interfaces {
			fmt.Fprintf(tw, "%s\t%s\t%s\t/%d\t%s\t%v\n", in.Name, in.IP, in.Netmask, in.Prefix, in.Broadcast, in.BroadcastFromOS)
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
