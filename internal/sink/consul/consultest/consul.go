package consultest

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Denied is Consul's message for a token lacking perm on name.
func Denied(perm, name string) string {
	return fmt.Sprintf("Permission denied: token with AccessorID '2c858bd0-9bd4-89ca-2b69-5c24825462fd' lacks permission '%s' on %q", perm, name)
}

// TransportError is what consul/api returns when Consul cannot be reached
// at path: not an api.StatusError.
func TransportError(path string) error {
	return &url.Error{Op: "Put", URL: "http://127.0.0.1:8500" + path, Err: errors.New("dial tcp 127.0.0.1:8500: connect: connection refused")}
}

// CloneService is a deep copy of s.
func CloneService(s *api.AgentService) *api.AgentService {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	c.Meta = maps.Clone(s.Meta)
	return &c
}

// CutFilterLiteral cuts the go-bexpr string literal that starts s: "..." or
// `...`, ending at the first closing delimiter (no escapes), then
// strconv.Unquote'd. It returns the literal's value and what follows it.
func CutFilterLiteral(s string) (lit, rest string, err error) {
	if s == "" || (s[0] != '"' && s[0] != '`') {
		return "", "", fmt.Errorf("want a string literal at %q", s)
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", "", fmt.Errorf("unterminated literal %q", s)
	}
	raw := s[:end+2]
	lit, err = strconv.Unquote(raw)
	if err != nil {
		return "", "", fmt.Errorf("literal %s: %w", raw, err)
	}
	return lit, s[end+2:], nil
}
