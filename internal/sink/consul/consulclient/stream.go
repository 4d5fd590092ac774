package consulclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// streamKey is the context key of StreamArray.
type streamKey struct{}

// StreamArray returns ctx marked so that streamTransport decodes the JSON
// array of a successful response element by element with each (which
// calls dec.Decode once) and hands consul/api an empty array instead: a
// read of 10,000 catalog entries then holds one decoded entry at a time,
// not the whole body and every entry, while consul/api still builds the
// request (token, datacenter, namespace, filter) and reads the status,
// headers and errors.
func StreamArray(ctx context.Context, each func(dec *json.Decoder) error) context.Context {
	return context.WithValue(ctx, streamKey{}, each)
}

// streamTransport implements StreamArray; requests without its mark pass
// through untouched.
type streamTransport struct{ base http.RoundTripper }

func (t streamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	each, ok := req.Context().Value(streamKey{}).(func(*json.Decoder) error)
	resp, err := t.base.RoundTrip(req)
	if !ok || err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	fail := func(err error) (*http.Response, error) {
		return nil, fmt.Errorf("decode the answer of %s: %w", req.URL.Path, err)
	}
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil {
		return fail(err)
	} else if tok != json.Delim('[') {
		return fail(fmt.Errorf("want a JSON array, got %v", tok))
	}
	for dec.More() {
		if err := each(dec); err != nil {
			return fail(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(err)
	}
	resp.Body = io.NopCloser(strings.NewReader("[]"))
	resp.ContentLength = 2
	resp.Header.Del("Content-Length")
	return resp, nil
}
