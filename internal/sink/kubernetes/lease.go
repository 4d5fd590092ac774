package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/fleet"
	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// Labels and annotations on what the sink writes.
const (
	// ManagedBy is the value of endpointslice.kubernetes.io/managed-by: a
	// domain-style controller name of ours (never the built-in
	// controller's endpointslice-controller.k8s.io). A label value takes no
	// '/': the API server refuses "udp-discovery-bridge.io/bridge".
	ManagedBy       = "bridge.udp-discovery-bridge.io"
	LabelManagedBy  = "endpointslice.kubernetes.io/managed-by"
	LabelService    = "kubernetes.io/service-name"
	LabelFleet      = "udp-discovery-bridge.io/fleet"
	LabelRole       = "udp-discovery-bridge.io/role"
	AnnotBridge     = "udp-discovery-bridge.io/bridge-id"
	AnnotHolder     = "udp-discovery-bridge.io/holder"
	AnnotUnobserved = "udp-discovery-bridge.io/unobserved-since"
	roleBridge      = "bridge"
	roleLeader      = "leader"
	roleObservation = "observation"
)

// objectName is a DNS-subdomain-safe name of prefix and id: id lower-cased
// with any other character replaced by '-', and a hash of id appended when
// that changed it (so two IDs never share a name).
func objectName(prefix, id string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s != id || len(s) > 200 {
		sum := sha256.Sum256([]byte(id))
		s = s[:min(len(s), 200)] + "-" + hex.EncodeToString(sum[:4])
		s = strings.TrimLeft(s, "-.")
	}
	return prefix + s
}

// elector holds (or waits for) one Lease. Each time it takes the Lease it
// begins a term, a context that ends when the Lease is lost (another holder
// in it, or no successful renewal for two thirds of its duration); the
// leader's work runs under it and the elector waits for the work to return
// before it stands again, so terms never overlap. Expiry is judged on this
// bridge's clock, from when it saw the Lease last change (as client-go's
// leader election does), so clock skew between hosts does not matter.
type elector struct {
	o      kubeapi.Objects
	clk    clock.Clock
	log    zerolog.Logger
	name   string
	holder string
	labels map[string]string
	annots map[string]string
	dur    time.Duration
	// writes counts each Lease write.
	writes func()
	// owners, when set, gives the Lease's owner references (the fleet's
	// Service: the garbage collector deletes the Lease with it).
	owners func(ctx context.Context) []kubeapi.OwnerReference
	// created, when set, is called after the Lease was created (it did not
	// exist: first start, or deleted meanwhile).
	created func()
	// own: the Lease is this bridge's by name (its liveness Lease): an
	// earlier incarnation's hold is taken over at once.
	own bool

	seenRV string    // resourceVersion of another holder's Lease last read
	seenAt time.Time // when it was first read with seenRV

	// mu guards renew: the elector's loop writes it, the leader's work
	// reads it (check) from its own goroutine.
	mu    sync.Mutex
	renew time.Time // last successful renewal
}

// errHeld: another holder's Lease has not expired.
var errHeld = errors.New("held by another bridge")

// acquire takes or renews the Lease; errHeld when another holder's has not
// expired on this bridge's clock.
func (e *elector) acquire(ctx context.Context) error {
	now := e.clk.Now()
	var l kubeapi.Lease
	err := e.o.Get(ctx, kubeapi.Leases, e.name, &l)
	if kubeapi.IsNotFound(err) {
		l = e.lease(ctx, now, 0)
		l.Spec.AcquireTime = &kubeapi.MicroTime{Time: now}
		if err := e.o.Create(ctx, kubeapi.Leases, &l, &l); err != nil {
			return fmt.Errorf("create lease %s: %w", e.name, err)
		}
		e.took(now)
		if e.created != nil {
			e.created()
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lease %s: %w", e.name, err)
	}
	mine := l.Spec.HolderIdentity == e.holder
	if !mine && !e.own && l.Spec.HolderIdentity != "" {
		if l.Metadata.ResourceVersion != e.seenRV {
			e.seenRV, e.seenAt = l.Metadata.ResourceVersion, now
		}
		dur := time.Duration(l.Spec.LeaseDurationSeconds) * time.Second
		if now.Sub(e.seenAt) < dur {
			return fmt.Errorf("lease %s: %w (%s)", e.name, errHeld, l.Spec.HolderIdentity)
		}
		e.log.Info().Str("lease", e.name).Str("holder", l.Spec.HolderIdentity).Str("unchanged_for", now.Sub(e.seenAt).Round(time.Millisecond).String()).
			Msg("taking over an expired lease")
	}
	n := e.lease(ctx, now, l.Spec.LeaseTransitions)
	n.Metadata.ResourceVersion = l.Metadata.ResourceVersion
	n.Spec.AcquireTime = l.Spec.AcquireTime
	if !mine {
		n.Spec.AcquireTime = &kubeapi.MicroTime{Time: now}
		n.Spec.LeaseTransitions++
	}
	if err := e.o.Update(ctx, kubeapi.Leases, e.name, &n, &n); err != nil {
		return fmt.Errorf("renew lease %s: %w", e.name, err)
	}
	e.took(now)
	return nil
}

func (e *elector) lease(ctx context.Context, now time.Time, transitions int32) kubeapi.Lease {
	var owners []kubeapi.OwnerReference
	if e.owners != nil {
		owners = e.owners(ctx)
	}
	return kubeapi.Lease{APIVersion: kubeapi.Leases.APIVersion(), Kind: kubeapi.Leases.Kind(),
		Metadata: kubeapi.Meta{Name: e.name, Labels: e.labels, Annotations: e.annots, OwnerReferences: owners},
		Spec: kubeapi.LeaseSpec{HolderIdentity: e.holder, LeaseDurationSeconds: int32((e.dur + time.Second - 1) / time.Second),
			RenewTime: &kubeapi.MicroTime{Time: now}, LeaseTransitions: transitions}}
}

func (e *elector) took(now time.Time) {
	e.mu.Lock()
	e.renew = now
	e.mu.Unlock()
	if e.writes != nil {
		e.writes()
	}
}

func (e *elector) lastRenew() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.renew
}

// check reads the Lease back: ErrNotLeader unless this bridge holds it and
// renewed it within two thirds of its duration. The leader calls it before
// every write.
func (e *elector) check(ctx context.Context) error {
	var l kubeapi.Lease
	if err := e.o.Get(ctx, kubeapi.Leases, e.name, &l); err != nil {
		if kubeapi.IsNotFound(err) {
			return fmt.Errorf("%w: lease %s is gone", fleet.ErrNotLeader, e.name)
		}
		return fmt.Errorf("read lease %s: %w", e.name, err)
	}
	if l.Spec.HolderIdentity != e.holder {
		return fmt.Errorf("%w: lease %s is held by %q", fleet.ErrNotLeader, e.name, l.Spec.HolderIdentity)
	}
	if age := e.clk.Now().Sub(e.lastRenew()); age >= e.dur*2/3 {
		return fmt.Errorf("%w: lease %s not renewed for %s", fleet.ErrNotLeader, e.name, age.Round(time.Millisecond))
	}
	return nil
}

// release gives the Lease up, so a standby takes it at once: it deletes
// it, only while this bridge still holds it (resourceVersion precondition),
// so that nothing of the fleet stays behind when the last bridge goes.
func (e *elector) release(ctx context.Context) error {
	var l kubeapi.Lease
	if err := e.o.Get(ctx, kubeapi.Leases, e.name, &l); err != nil {
		return fmt.Errorf("read lease %s: %w", e.name, err)
	}
	if l.Spec.HolderIdentity != e.holder {
		return nil
	}
	if err := e.o.Remove(ctx, kubeapi.Leases, e.name, l.Metadata.ResourceVersion); err != nil {
		return fmt.Errorf("release lease %s: %w", e.name, err)
	}
	if e.writes != nil {
		e.writes()
	}
	return nil
}

// ErrLeaseLost ends a term whose Lease was lost.
var ErrLeaseLost = fmt.Errorf("%w: kubernetes leader lease lost", fleet.ErrLeadershipLost)

// campaign stands for the Lease until ctx ends and runs lead for every term
// it wins. Between attempts and renewals it waits a third of the Lease's
// duration.
func (e *elector) campaign(ctx context.Context, lead func(term context.Context)) {
	period := e.dur / 3
	failing := false
	for ctx.Err() == nil {
		err := e.acquire(ctx)
		switch {
		case err == nil:
			failing = false
			e.hold(ctx, lead, period)
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, errHeld):
			failing = false
		case !failing:
			failing = true
			e.log.Warn().Err(err).Msg("cannot take the kubernetes leader lease; retrying")
		}
		if !clock.Sleep(e.clk, period, ctx.Done()) {
			return
		}
	}
}

// hold runs one term: it renews every period until a renewal finds another
// holder or none succeeded for two thirds of the duration.
func (e *elector) hold(ctx context.Context, lead func(term context.Context), period time.Duration) {
	term, end := context.WithCancelCause(ctx)
	defer end(nil)
	e.log.Info().Str("lease", e.name).Msg("kubernetes leader lease acquired: this bridge leads")
	worked := make(chan struct{})
	go func() {
		defer close(worked)
		lead(term)
	}()
	for {
		t := e.clk.NewTimer(period)
		select {
		case <-worked:
			t.Stop()
			end(fmt.Errorf("%w: the leader's work found another leader", fleet.ErrLeadershipLost))
			e.log.Warn().Msg("kubernetes leader lease given up: following")
			return
		case <-ctx.Done():
			t.Stop()
			<-worked
			return
		case <-t.C():
		}
		err := e.renewWithin(ctx, e.lastRenew().Add(e.dur*2/3))
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			<-worked
			return
		}
		if errors.Is(err, errHeld) || kubeapi.IsConflict(err) || e.clk.Now().Sub(e.lastRenew()) >= e.dur*2/3 {
			end(ErrLeaseLost)
			e.log.Warn().Err(err).Msg("kubernetes leader lease lost: following")
			<-worked
			e.seenRV = "" // judge the new holder's lease afresh
			return
		}
		e.log.Debug().Err(err).Msg("kubernetes leader lease renewal failed; retrying")
	}
}

// renewWithin renews the Lease (acquire), giving up at deadline on this
// bridge's clock: a request that hangs (a partition drops packets: no
// answer and no error until the client's own timeout) must not keep the
// term past two thirds of the lease, after which a standby may take the
// Lease over. The request is cancelled then and waited for.
func (e *elector) renewWithin(ctx context.Context, deadline time.Time) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.acquire(rctx) }()
	t := e.clk.NewTimer(deadline.Sub(e.clk.Now()))
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C():
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("renew lease %s: no answer within two thirds of its duration (%s): %w", e.name, e.dur*2/3, err)
		}
		return nil // it answered as the deadline came
	}
}

// keepAlive renews the bridge's own Lease every third of its duration
// until ctx ends; ready is called after the first success.
func (e *elector) keepAlive(ctx context.Context, ready func()) {
	failing := false
	for ctx.Err() == nil {
		err := e.acquire(ctx)
		switch {
		case err == nil:
			if failing {
				e.log.Info().Msg("this bridge's lease renewed again")
			}
			failing = false
			ready()
		case ctx.Err() != nil:
			return
		case !failing:
			failing = true
			e.log.Warn().Err(err).Msg("cannot renew this bridge's lease (its observation counts only while it is renewed); retrying")
		}
		if !clock.Sleep(e.clk, e.dur/3, ctx.Done()) {
			return
		}
	}
}
