package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// publisher is where the Member publishes this bridge's observation: its
// ConfigMap, written with server-side apply (created if missing). The epoch
// is whether it carries the owner reference to the fleet's Service: once
// the Service exists, the observation is written again to carry it.
type publisher struct {
	s *Sink
	// owners are the owner references Epoch found, which Write puts on
	// the ConfigMap.
	owners []kubeapi.OwnerReference
}

// Epoch reads the owner reference (once the Service exists).
func (p *publisher) Epoch(ctx context.Context) (string, error) {
	p.owners = p.s.owners(ctx)
	if p.owners != nil {
		return "owned", nil
	}
	return "", nil
}

// Write puts chunks in this bridge's ConfigMap: one write.
func (p *publisher) Write(ctx context.Context, _ string, chunks [][]byte, _ int) (int, error) {
	s := p.s
	cm := kubeapi.ConfigMap{APIVersion: kubeapi.ConfigMaps.APIVersion(), Kind: kubeapi.ConfigMaps.Kind(),
		Metadata: kubeapi.Meta{Name: s.obsName(), Labels: map[string]string{LabelFleet: s.cfg.Service, LabelRole: roleObservation},
			Annotations: map[string]string{AnnotBridge: s.cfg.BridgeID, AnnotHolder: s.holder}, OwnerReferences: p.owners},
		BinaryData: map[string][]byte{}}
	for i, c := range chunks {
		cm.BinaryData[strconv.Itoa(i)] = c
	}
	if err := s.o.Apply(ctx, kubeapi.ConfigMaps, cm.Metadata.Name, &cm, nil); err != nil {
		return 0, fmt.Errorf("publish observation in configmap %s/%s: %w", s.ns, cm.Metadata.Name, err)
	}
	s.countWrite("configmap")
	sink.Wrote(ctx, 1)
	return 1, nil
}

// leaseElector is how a Kubernetes bridge stands for leadership: it renews
// its own Lease (its liveness: its observation counts while it is renewed)
// and campaigns for the leader Lease.
type leaseElector struct{ s *Sink }

// Campaign renews the own Lease and stands for the leader Lease until ctx
// ends; leading is set for each term.
func (e leaseElector) Campaign(ctx context.Context, lead func(term context.Context)) {
	s := e.s
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.own.keepAlive(ctx, func() { s.once.Do(func() { close(s.started) }) }) }()
	go func() {
		defer wg.Done()
		s.leader.campaign(ctx, func(term context.Context) {
			s.leading.Store(true)
			defer s.leading.Store(false)
			lead(term)
		})
	}()
	wg.Wait()
}

// Leader reports whether this bridge holds the leader Lease.
func (e leaseElector) Leader() bool { return e.s.leading.Load() }

// Ready is closed after the first renewal of the own Lease.
func (e leaseElector) Ready() <-chan struct{} { return e.s.started }
