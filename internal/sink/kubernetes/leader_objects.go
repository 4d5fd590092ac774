package kubernetes

// The leader's reads and writes of the objects it owns: the fleet's
// slices and its Service.

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// readLayout lists the fleet's slices.
func (s *Sink) readLayout(ctx context.Context) (*layout, error) {
	var items []EndpointSlice
	sel := selector(LabelService, s.cfg.Service, LabelManagedBy, ManagedBy, LabelFleet, s.cfg.Service)
	if err := s.o.list(ctx, slicesRes, sel, &items); err != nil {
		return nil, fmt.Errorf("list endpointslices of service %s: %w", s.cfg.Service, err)
	}
	now := s.clk.Now()
	lay := newLayout()
	slices.SortFunc(items, func(a, b EndpointSlice) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	for _, es := range items {
		sl, err := parseSlice(es, now)
		if err != nil {
			s.log.Warn().Err(err).Msg("ignoring an endpointslice of ours that does not parse")
			continue
		}
		lay.add(sl)
	}
	return lay, nil
}

// writeSlice creates, applies (resourceVersion precondition) or deletes
// (when empty, resourceVersion precondition) one slice written before.
func (s *Sink) writeSlice(ctx context.Context, sl *sliceState, owner *OwnerReference) error {
	var err error
	var out EndpointSlice
	switch {
	case len(sl.eps) == 0:
		err = s.o.remove(ctx, slicesRes, sl.name, sl.rv)
		if err == nil {
			s.countWrite("endpointslice")
			sl.dirty = false
		}
		return err
	case sl.create:
		obj := sl.object(s.ns, s.cfg.Service, s.cfg.PortName, owner)
		err = s.o.create(ctx, slicesRes, &obj, &out)
	default:
		obj := sl.object(s.ns, s.cfg.Service, s.cfg.PortName, owner)
		err = s.o.apply(ctx, slicesRes, sl.name, &obj, &out)
	}
	if err != nil {
		return err
	}
	s.countWrite("endpointslice")
	sl.rv, sl.dirty, sl.create = out.Metadata.ResourceVersion, false, false
	return nil
}

// ensureService makes sure the selectorless Service exists and is the
// fleet's; it creates it when missing. It returns the owner reference the
// slices carry and the writes made.
func (s *Sink) ensureService(ctx context.Context) (*OwnerReference, int, error) {
	var svc Service
	err := s.o.get(ctx, services, s.cfg.Service, &svc)
	writes := 0
	if IsNotFound(err) {
		want := s.service()
		if err = s.o.create(ctx, services, &want, &svc); err == nil {
			writes++
			s.countWrite("service")
			s.log.Info().Str("service", s.cfg.Service).Str("namespace", s.ns).Bool("headless", s.cfg.Headless).Msg("created the selectorless service")
		}
	}
	if err != nil {
		return nil, writes, fmt.Errorf("service %s/%s: %w", s.ns, s.cfg.Service, err)
	}
	if svc.Metadata.Labels[LabelFleet] != s.cfg.Service {
		return nil, writes, fmt.Errorf("service %s/%s exists and is not this fleet's (no label %s=%s): refusing to attach endpointslices to it",
			s.ns, s.cfg.Service, LabelFleet, s.cfg.Service)
	}
	return &OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Metadata.Name, UID: svc.Metadata.UID}, writes, nil
}

// service is the wanted selectorless Service.
func (s *Sink) service() Service {
	svc := Service{APIVersion: services.apiVersion(), Kind: services.kind,
		Metadata: Meta{Name: s.cfg.Service, Labels: map[string]string{LabelFleet: s.cfg.Service, "app.kubernetes.io/managed-by": "udp-discovery-bridge"}},
		Spec:     ServiceSpec{Type: "ClusterIP", Ports: []ServicePort{{Name: s.cfg.PortName, Port: int32(s.cfg.ServicePort), Protocol: "TCP"}}}}
	if s.cfg.Headless {
		svc.Spec.ClusterIP = "None"
	}
	return svc
}
