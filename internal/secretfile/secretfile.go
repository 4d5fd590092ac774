// Package secretfile reads a secret (a Fernet key, a Consul ACL token, a
// Kubernetes service-account token, a bearer token) from a file, the one
// way every part of the bridge does: surrounding white space trimmed, an
// empty or oversized file refused, and every error naming the setting and
// the file, never the content.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSize is the largest secret file read: a projected service-account
// token is about 1 KiB, a Fernet key 44 bytes; a larger file is a mistake
// (a path to a binary, a log).
const MaxSize = 64 << 10

// ErrEmpty is wrapped by Read's error for a file holding only white space:
// an empty token would let anyone in, or send no credential at all.
var ErrEmpty = errors.New("file is empty")

// ErrTooLarge is wrapped by Read's error for a file over MaxSize.
var ErrTooLarge = errors.New("file is too large for a secret")

// Read returns the content of path with surrounding white space trimmed.
// what names the setting for errors ("consul_token_file"); errors name
// what and path (an *os.PathError says why the file could not be read)
// and never hold any of the file's content.
func Read(what, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: read secret: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: read secret: %w", what, path, err)
	}
	if len(b) > MaxSize {
		return "", fmt.Errorf("%s %s: %w (more than %d bytes)", what, path, ErrTooLarge, MaxSize)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s: %w", what, path, ErrEmpty)
	}
	return s, nil
}
