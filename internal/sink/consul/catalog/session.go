package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"
	"github.com/udp-discovery-bridge/bridge/pkg/clock"
)

// sessionName is the Consul session name of a bridge; a restarted bridge
// destroys the sessions it finds under its own name.
func sessionName(bridgeID string) string { return "udp-discovery-bridge " + bridgeID }

// bridgesNode is the synthetic catalog node the fleet's sessions hang on. A
// session bound to nothing belongs to the Consul server that created it and
// dies with it; bound to a node registered in the catalog with no checks, it
// lives for as long as it is renewed, whichever server answers.
func bridgesNode(fleet string) string {
	if strings.HasPrefix(fleet, consulclient.BridgeServiceName+"/") {
		return consulclient.SanitizeID(fleet) // udp-discovery-bridge/django -> udp-discovery-bridge-django
	}
	return consulclient.SanitizeID(consulclient.BridgeServiceName + "-" + fleet)
}

// session is one Consul session of this bridge: created with no checks on
// the fleet's node, Behavior=delete (the keys it holds go with it), renewed
// every TTL/2 until it is lost or stopped.
type session struct {
	id   string
	lost chan struct{} // closed when renewal found the session gone
	// check asks for a renewal now (buffered): after the lock it holds
	// was lost, the session may have gone with it.
	check chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
}

// checkNow asks the renewal to renew s now rather than at its next turn.
func (s *session) checkNow() {
	select {
	case s.check <- struct{}{}:
	default:
	}
}

// sessionManager creates sessions and keeps the current one renewed.
type sessionManager struct {
	api      catalogAPI
	node     string
	fleet    string
	bridgeID string
	ttl      time.Duration
	clock    clock.Clock
	log      zerolog.Logger
	redact   func(error) error
	renewals func() // counts a successful renewal (metrics)
	rules    consulclient.RulePrefixes
	// rateLimited records a renewal refused for Consul's rate limit (err)
	// or, with err nil, a renewal that went through; the leader holds its
	// writes while its renewals are refused.
	rateLimited func(err error)
}

// create registers the fleet node, destroys sessions this bridge left behind
// (a restart), and creates and starts renewing a new session.
func (m *sessionManager) create(ctx context.Context) (*session, error) {
	w := (&api.WriteOptions{}).WithContext(ctx)
	err := m.api.RegisterNode(&api.CatalogRegistration{
		Node:           m.node,
		Address:        "127.0.0.1",
		NodeMeta:       map[string]string{consulclient.MetaManagedBy: consulclient.ManagedByValue, MetaFleet: m.fleet},
		SkipNodeUpdate: false,
	}, w)
	if err != nil {
		return nil, consulclient.OpError("register node "+m.node, m.redact(err), m.rules)
	}
	name := sessionName(m.bridgeID)
	if old, err := m.api.NodeSessions(m.node, (&api.QueryOptions{}).WithContext(ctx)); err == nil {
		for _, s := range old {
			if s.Name == name {
				if err := m.api.DestroySession(s.ID, w); err == nil {
					m.log.Info().Str("session", s.ID).Msg("destroyed a session this bridge left behind")
				}
			}
		}
	}
	id, err := m.api.CreateSession(&api.SessionEntry{
		Name:     name,
		Node:     m.node,
		TTL:      m.ttl.String(),
		Behavior: api.SessionBehaviorDelete,
		// Observations and the leader key are released only when the
		// session dies; no delay is needed before another session takes
		// them (the writes are idempotent).
		LockDelay: time.Millisecond,
	}, w)
	if err != nil {
		return nil, consulclient.OpError("create session on node "+m.node, m.redact(err), m.rules)
	}
	sctx, stop := context.WithCancel(context.Background())
	s := &session{id: id, lost: make(chan struct{}), check: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	go m.renew(sctx, s)
	m.log.Info().Str("session", id).Str("node", m.node).Dur("ttl", m.ttl).Msg("consul session created")
	return s, nil
}

// renew renews s every TTL/2 (retrying sooner after a failure, and at
// once when asked with checkNow) until ctx ends or Consul says the session
// is gone, which closes s.lost. Renewals go to whichever server answers;
// they are not raft writes.
func (m *sessionManager) renew(ctx context.Context, s *session) {
	defer close(s.done)
	every := m.ttl / 2
	wait := every
	last := m.clock.Now() // of the last renewal (or the creation)
	for {
		t := m.clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-s.check:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return
		}
		se, err := m.api.RenewSession(s.id, (&api.WriteOptions{}).WithContext(ctx))
		switch {
		case err == nil && se == nil:
			m.log.Warn().Str("session", s.id).Msg("consul session lost (expired or destroyed); a new one will be created")
			close(s.lost)
			return
		case err == nil:
			m.renewals()
			m.limited(nil)
			wait, last = every, m.clock.Now()
		case ctx.Err() != nil:
			return
		default:
			now := m.clock.Now()
			// Unreachable Consul: give the session up after its TTL, before
			// the servers do (at twice the TTL). Refused for the rate limit:
			// the servers are up and keep it until twice its TTL, so keep
			// trying until just before that.
			ra, limited := consulclient.RateLimited(err)
			deadline := last.Add(m.ttl)
			if limited {
				deadline = last.Add(2*m.ttl - time.Second)
			}
			if !now.Before(deadline) {
				m.limited(nil)
				m.log.Warn().Err(m.redact(err)).Str("session", s.id).Dur("since_renewal", now.Sub(last)).Msg("consul session not renewed in time; treating it as lost")
				close(s.lost)
				return
			}
			wait = min(time.Second, every)
			if limited {
				m.limited(err)
				// Honour Retry-After, but try again before the TTL runs out.
				if ra > 0 {
					wait = max(min(ra, deadline.Sub(now)-time.Second), 100*time.Millisecond)
				}
			}
			m.log.Debug().Err(m.redact(err)).Str("session", s.id).Dur("retry_in", wait).Msg("consul session renewal failed; retrying")
		}
	}
}

// limited reports a renewal's rate-limit outcome, if anyone listens.
func (m *sessionManager) limited(err error) {
	if m.rateLimited != nil {
		m.rateLimited(err)
	}
}

// close stops renewing s; with destroy it also destroys the session, which
// deletes the keys it holds (this bridge's observation, the leader key).
func (m *sessionManager) close(ctx context.Context, s *session, destroy bool) error {
	s.stop()
	<-s.done
	if !destroy {
		return nil
	}
	if err := m.api.DestroySession(s.id, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul destroy session %s: %w", s.id, m.redact(err))
	}
	return nil
}
