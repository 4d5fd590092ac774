package kubernetes

// The leader's reads and writes of the objects it owns: the fleet's
// slices and its Service.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// readLayout lists the fleet's slices.
func (s *Sink) readLayout(ctx context.Context) (*layout, error) {
	var items []kubeapi.EndpointSlice
	sel := kubeapi.Selector(LabelService, s.cfg.Service, LabelManagedBy, ManagedBy, LabelFleet, s.cfg.Service)
	if err := s.o.List(ctx, kubeapi.EndpointSlices, sel, &items); err != nil {
		return nil, fmt.Errorf("list endpointslices of service %s: %w", s.cfg.Service, err)
	}
	now := s.clk.Now()
	lay := newLayout()
	slices.SortFunc(items, func(a, b kubeapi.EndpointSlice) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
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
func (s *Sink) writeSlice(ctx context.Context, sl *sliceState, owner *kubeapi.OwnerReference) error {
	var err error
	var out kubeapi.EndpointSlice
	switch {
	case len(sl.eps) == 0:
		err = s.o.Remove(ctx, kubeapi.EndpointSlices, sl.name, sl.rv)
		if err == nil {
			s.countWrite("endpointslice")
			sl.dirty = false
		}
		return err
	case sl.create:
		obj := sl.object(s.ns, s.cfg.Service, s.cfg.PortName, owner)
		err = s.o.Create(ctx, kubeapi.EndpointSlices, &obj, &out)
	default:
		obj := sl.object(s.ns, s.cfg.Service, s.cfg.PortName, owner)
		err = s.o.Apply(ctx, kubeapi.EndpointSlices, sl.name, &obj, &out)
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
func (s *Sink) ensureService(ctx context.Context) (*kubeapi.OwnerReference, int, error) {
	var svc kubeapi.Service
	err := s.o.Get(ctx, kubeapi.Services, s.cfg.Service, &svc)
	writes := 0
	if kubeapi.IsNotFound(err) {
		want := s.service()
		if err = s.o.Create(ctx, kubeapi.Services, &want, &svc); err == nil {
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
	return &kubeapi.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Metadata.Name, UID: svc.Metadata.UID}, writes, nil
}

// service is the wanted selectorless Service.
func (s *Sink) service() kubeapi.Service {
	svc := kubeapi.Service{APIVersion: kubeapi.Services.APIVersion(), Kind: kubeapi.Services.Kind(),
		Metadata: kubeapi.Meta{Name: s.cfg.Service, Labels: map[string]string{LabelFleet: s.cfg.Service, "app.kubernetes.io/managed-by": "udp-discovery-bridge"}},
		Spec:     kubeapi.ServiceSpec{Type: "ClusterIP", Ports: []kubeapi.ServicePort{{Name: s.cfg.PortName, Port: int32(s.cfg.ServicePort), Protocol: "TCP"}}}}
	if s.cfg.Headless {
		svc.Spec.ClusterIP = "None"
	}
	return svc
}
