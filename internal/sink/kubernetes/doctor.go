package kubernetes

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/udp-discovery-bridge/bridge/internal/sink/kubernetes/kubeapi"
)

// Rights are what the sink does in its namespace, by API group and
// resource: the rules of the chart's Role (templates/rbac.yaml; a test keeps
// the two equal).
var Rights = []struct {
	Group, Resource string
	Verbs           []string
}{
	{"discovery.k8s.io", "endpointslices", []string{"get", "list", "create", "update", "patch", "delete"}},
	{"", "services", []string{"get", "create"}},
	{"coordination.k8s.io", "leases", []string{"get", "list", "create", "update", "delete"}},
	{"", "configmaps", []string{"get", "list", "create", "update", "patch", "delete"}},
	{"", "events", []string{"create", "patch"}},
}

// DNSRights are what k8s_write dnsendpoint adds to Rights (the chart's
// Role has them then).
var DNSRights = struct {
	Group, Resource string
	Verbs           []string
}{"externaldns.k8s.io", "dnsendpoints", []string{"get", "create", "patch"}}

// runDoctor implements sink.Factory.Doctor: it asks the API server, with a
// SelfSubjectAccessReview per verb (which changes nothing), whether this
// bridge's credentials may do what the sink does, and whether the Service
// is missing (the leader creates it), the fleet's, or someone else's. It
// prints a line per check and reports whether all passed.
func runDoctor(ctx context.Context, cfg Config, w io.Writer) (bool, error) {
	c, err := kubeapi.NewClient(cfg.Kubeconfig)
	if err != nil {
		return false, err
	}
	ns := namespaceOf(cfg, c)
	fmt.Fprintf(w, "kubernetes at %s (namespace %s, service %s, bridge_id %s):\n", c.Host(), ns, cfg.Service, cfg.BridgeID)
	ok := true
	rights := slices.Clone(Rights)
	if cfg.DNS != nil {
		rights = append(rights, DNSRights)
	}
	for _, r := range rights {
		res := r.Resource
		if r.Group != "" {
			res += "." + r.Group
		}
		var denied []string
		for _, v := range r.Verbs {
			allowed, reason, err := c.AccessReview(ctx, ns, r.Group, r.Resource, v)
			switch {
			case err != nil:
				fmt.Fprintf(w, "  FAIL  cannot ask whether it may %s %s: %v\n", v, res, err)
				return false, nil
			case !allowed:
				denied = append(denied, v+reasonSuffix(reason))
			}
		}
		if len(denied) > 0 {
			ok = false
			fmt.Fprintf(w, "  FAIL  %s: may not %s (see the chart's Role, templates/rbac.yaml)\n", res, strings.Join(denied, ", "))
		} else {
			fmt.Fprintf(w, "  ok    %s: %s\n", res, strings.Join(r.Verbs, ", "))
		}
	}
	var svc kubeapi.Service
	switch err := c.Objects(ns).Get(ctx, kubeapi.Services, cfg.Service, &svc); {
	case kubeapi.IsNotFound(err):
		fmt.Fprintf(w, "  ok    service %s/%s: missing, the leader creates it\n", ns, cfg.Service)
	case err != nil:
		ok = false
		fmt.Fprintf(w, "  FAIL  service %s/%s: %v\n", ns, cfg.Service, err)
	case svc.Metadata.Labels[LabelFleet] != cfg.Service:
		ok = false
		fmt.Fprintf(w, "  FAIL  service %s/%s exists and is not this fleet's (no label %s=%s): the sink will not attach slices to it\n",
			ns, cfg.Service, LabelFleet, cfg.Service)
	default:
		fmt.Fprintf(w, "  ok    service %s/%s: the fleet's\n", ns, cfg.Service)
	}
	return ok, nil
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}
