package discover

import (
	"errors"
	"fmt"

	"github.com/fernet/fernet-go"
)

// Key is a Fernet key shared with the servers (URL-safe base64 of 32 bytes).
// Its String and GoString never reveal the key, so a Key can be logged or
// wrapped in an error without leaking it.
type Key struct{ k fernet.Key }

// ErrInvalidKey is wrapped by ParseKey's errors.
var ErrInvalidKey = errors.New("invalid Fernet key")

// ParseKey parses a Fernet key: URL-safe (or standard) base64 of exactly 32
// bytes. The error never contains the key.
func ParseKey(s string) (*Key, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	k, err := fernet.DecodeKey(s)
	if err != nil {
		return nil, fmt.Errorf("%w: want URL-safe base64 of 32 bytes (%d characters given)", ErrInvalidKey, len(s))
	}
	return &Key{k: *k}, nil
}

// GenerateKey returns a new random key in its text form.
func GenerateKey() (string, error) {
	var k fernet.Key
	if err := k.Generate(); err != nil {
		return "", fmt.Errorf("generate Fernet key: %w", err)
	}
	return k.Encode(), nil
}

// String implements fmt.Stringer without revealing the key.
func (k *Key) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the key.
func (k *Key) GoString() string { return "discover.Key{[redacted]}" }
