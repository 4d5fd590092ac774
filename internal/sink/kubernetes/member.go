package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/udp-discovery-bridge/bridge/internal/fleet/member"
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

// Verify reads this bridge's ConfigMap back on a round whose observation
// is unchanged: someone with write access to the namespace may have
// overwritten or deleted it, and without a repair the bridge would write it
// again only when its set changes (the robustness harness found the
// leader counting no observation of that bridge meanwhile). It reports a
// repair when the chunks or the holder differ from what was written.
func (p *publisher) Verify(ctx context.Context, _ string, chunks [][]byte) (bool, error) {
	s := p.s
	var cm kubeapi.ConfigMap
	why := ""
	switch err := s.o.Get(ctx, kubeapi.ConfigMaps, s.obsName(), &cm); {
	case kubeapi.IsNotFound(err):
		why = "deleted"
	case err != nil:
		return false, fmt.Errorf("read back configmap %s/%s: %w", s.ns, s.obsName(), err)
	default:
		why = observationDiffers(cm, chunks, s.holder)
	}
	if why == "" {
		return false, nil
	}
	s.metrics.repairs.Inc()
	s.log.Warn().Str("configmap", s.ns+"/"+s.obsName()).Str("found", why).
		Msg("this bridge's observation ConfigMap was changed by someone else; rewriting it (see docs/design/kubernetes-fencing.md on scoping the fleet's Role)")
	return true, nil
}

// observationDiffers says how cm differs from an observation of chunks
// written by holder ("" when it does not).
func observationDiffers(cm kubeapi.ConfigMap, chunks [][]byte, holder string) string {
	if h := cm.Metadata.Annotations[AnnotHolder]; h != holder {
		return fmt.Sprintf("holder annotation %q", h)
	}
	if len(cm.BinaryData) != len(chunks) {
		return fmt.Sprintf("%d chunks, %d written", len(cm.BinaryData), len(chunks))
	}
	for i, c := range chunks {
		if !bytes.Equal(cm.BinaryData[strconv.Itoa(i)], c) {
			return fmt.Sprintf("chunk %d changed", i)
		}
	}
	return ""
}

var _ member.Verifier = (*publisher)(nil)

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
