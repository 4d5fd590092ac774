package chartgen

import (
	"bytes"
	"encoding/json"
	"errors"
)

// obj is a JSON object that keeps its keys' order, so the generated schema
// reads like the hand-written rest of the file.
type obj []field

type field struct {
	k string
	v any
}

// MarshalJSON writes the fields in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.k)
		if err != nil {
			return nil, err
		}
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(f.v); err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(bytes.TrimSpace(v.Bytes()))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// get returns the value of key.
func (o obj) get(key string) (json.RawMessage, bool) {
	for _, f := range o {
		if f.k == key {
			raw, ok := f.v.(json.RawMessage)
			return raw, ok
		}
	}
	return nil, false
}

// set replaces the value of key, reporting whether it was there.
func (o obj) set(key string, v any) bool {
	for i := range o {
		if o[i].k == key {
			o[i].v = v
			return true
		}
	}
	return false
}

// decodeObj reads a JSON object's fields in order, values left raw.
func decodeObj(b []byte) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("want a JSON object")
	}
	var o obj
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		o = append(o, field{key, raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return o, nil
}
