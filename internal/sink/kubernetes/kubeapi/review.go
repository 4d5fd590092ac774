package kubeapi

import (
	"context"
	"encoding/json"
	"net/http"
)

// AccessReview asks the API server, with a SelfSubjectAccessReview (which
// changes nothing), whether the client may do verb on group/resource in
// namespace ns; reason is the authorizer's, when it gives one.
func (c *Client) AccessReview(ctx context.Context, ns, group, resource, verb string) (allowed bool, reason string, err error) {
	body, err := json.Marshal(map[string]any{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
		"spec": map[string]any{"resourceAttributes": map[string]string{"namespace": ns, "verb": verb, "group": group, "resource": resource}}})
	if err != nil {
		return false, "", err
	}
	var out struct {
		Status struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"status"`
	}
	if err := c.do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", nil, "application/json", body, &out); err != nil {
		return false, "", err
	}
	return out.Status.Allowed, out.Status.Reason, nil
}
