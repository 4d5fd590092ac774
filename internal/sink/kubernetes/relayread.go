package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// This file is the relay's reader of the fleet's EndpointSlices
// (relay_source kubernetes): their ready endpoints, polled.

// RelayPoll is how often the relay lists the fleet's EndpointSlices, and
// RelayTimeout the bound of one list. The relay polls rather than
// watches: kubeapi speaks no watch (no client-go, on purpose: the image's
// size), a watch needs resourceVersion bookkeeping, bookmarks and a relist
// on 410 Gone, and a list of a handful of label-selected slices from the
// watch cache (ListCached) is cheap. A change is relayed within the poll
// (1 s) and the list's time.
const (
	RelayPoll    = time.Second
	RelayTimeout = 5 * time.Second
)

// ReadyReader reads the ready endpoints of the EndpointSlices the fleet's
// leader writes for its Service: labelled with the Service
// (kubernetes.io/service-name), this sink's managed-by
// (endpointslice.kubernetes.io/managed-by) and the fleet
// (udp-discovery-bridge.io/fleet), never another controller's slices of
// the same Service. An endpoint is ready as consumers read it (ready
// absent or true): a server unobserved by the fleet (terminating) or
// whose app check fails is not. Its Read has the signature of the relay's
// source.Reader.
type ReadyReader struct {
	o       kubeapi.Objects
	ns, sel string
	service string
}

// NewReadyReader returns the reader of the fleet cfg configures, with an
// API client of its own from cfg.Kubeconfig (the in-cluster service
// account when empty) in the sink's namespace. It makes no API call.
func NewReadyReader(cfg Config) (*ReadyReader, error) {
	c, err := kubeapi.NewClient(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("relay source kubernetes: %w", err)
	}
	return newReadyReader(cfg, c), nil
}

func newReadyReader(cfg Config, c *kubeapi.Client) *ReadyReader {
	ns := namespaceOf(cfg, c)
	return &ReadyReader{o: c.Objects(ns), ns: ns, service: cfg.Service,
		sel: kubeapi.Selector(LabelService, cfg.Service, LabelManagedBy, ManagedBy, LabelFleet, cfg.Service)}
}

// Read lists the fleet's slices (from the API server's cache) and returns
// their ready IPv4 endpoints, each with its slice's port; index is
// ignored (a poll) and 0 returned.
func (r *ReadyReader) Read(ctx context.Context, _ uint64) ([]netip.AddrPort, uint64, error) {
	var items []kubeapi.EndpointSlice
	if err := r.o.ListCached(ctx, kubeapi.EndpointSlices, r.sel, &items); err != nil {
		return nil, 0, fmt.Errorf("list the endpointslices of service %s/%s (%s): %w", r.ns, r.service, r.sel, err)
	}
	var out []netip.AddrPort
	for _, es := range items {
		if es.AddressType != "IPv4" {
			continue
		}
		var port uint16
		if len(es.Ports) > 0 && es.Ports[0].Port > 0 && es.Ports[0].Port <= 65535 {
			port = uint16(es.Ports[0].Port)
		}
		for _, e := range es.Endpoints {
			if !e.Conditions.IsReady() {
				continue
			}
			for _, a := range e.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					out = append(out, netip.AddrPortFrom(ip, port))
				}
			}
		}
	}
	return out, 0, nil
}
