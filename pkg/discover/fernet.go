package discover

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fernet/fernet-go"
)

// Errors returned by (*Key).Open. Callers branch with errors.Is; the round
// counts all of them as Stats.Rejected.
var (
	// ErrTokenInvalid: not a Fernet token, malformed, or not signed with our
	// key (a wrong key and a forged token look the same).
	ErrTokenInvalid = errors.New("invalid Fernet token")
	// ErrTokenExpired: authentic, but stamped longer ago than the maximum age
	// plus the clock-skew tolerance (a replay, or a very slow peer).
	ErrTokenExpired = errors.New("Fernet token too old")
	// ErrTokenFromFuture: authentic, but stamped further in the future than
	// the clock-skew tolerance.
	ErrTokenFromFuture = errors.New("Fernet token from the future")
)

const (
	fernetVersion = 0x80
	// fernetMinLen is the decoded length of a token with an empty message:
	// version(1) + timestamp(8) + IV(16) + one cipher block(16) + HMAC(32).
	fernetMinLen = 1 + 8 + 16 + 16 + 32
	// fernetHeaderText is the base64 text holding version and timestamp
	// (9 bytes = 12 characters).
	fernetHeaderText = 12
)

// Seal returns a Fernet token of msg stamped with now (whole seconds, as the
// Fernet spec says) and a fresh random IV, so two calls never return the
// same token. The token is URL-safe base64 with padding, as Python's
// cryptography library produces.
func (k *Key) Seal(msg []byte, now time.Time) []byte {
	tok, err := fernet.EncryptAndSignAtTime(msg, &k.k, now)
	if err != nil {
		// Only crypto/rand can fail here, and since Go 1.24 it never
		// returns an error; a failure is a broken host, not an input.
		panic(fmt.Sprintf("discover: Fernet seal: %v", err))
	}
	return tok
}

// Open verifies token with k and returns its plaintext. Surrounding
// whitespace (a server's trailing newline) is ignored. The HMAC is checked
// first, without a library TTL; only an authentic token's timestamp is then
// checked against now: older than maxAge+skew is ErrTokenExpired, newer
// than now+skew is ErrTokenFromFuture. Anything else that fails is
// ErrTokenInvalid. Errors never contain the key or the plaintext.
func (k *Key) Open(token []byte, now time.Time, maxAge, skew time.Duration) ([]byte, error) {
	msg, _, err := k.open(token, now, maxAge, skew)
	return msg, err
}

// open is Open that also returns the authentic token's stamp (whole
// seconds), for the round's replay check.
func (k *Key) open(token []byte, now time.Time, maxAge, skew time.Duration) ([]byte, time.Time, error) {
	if k == nil {
		return nil, time.Time{}, fmt.Errorf("%w: no key", ErrTokenInvalid)
	}
	token = trimASCIISpace(token)
	ts, err := fernetHeader(token)
	if err != nil {
		return nil, time.Time{}, err
	}
	msg := fernet.VerifyAndDecrypt(token, 0, []*fernet.Key{&k.k})
	if msg == nil {
		return nil, time.Time{}, fmt.Errorf("%w: signature or padding check failed", ErrTokenInvalid)
	}
	stamp := time.Unix(ts, 0)
	age := now.Sub(stamp)
	switch {
	case age > maxAge+skew:
		return nil, stamp, fmt.Errorf("%w: stamped %s ago, limit %s + %s skew", ErrTokenExpired, age.Truncate(time.Second), maxAge, skew)
	case -age > skew:
		return nil, stamp, fmt.Errorf("%w: stamped %s ahead, skew limit %s", ErrTokenFromFuture, (-age).Truncate(time.Second), skew)
	}
	return msg, stamp, nil
}

// fernetHeader checks the token's shape before any cryptography (padded
// URL-safe base64, version byte, a length the Fernet layout allows) and
// returns its timestamp. The length check also keeps inputs away from
// fernet-go's verify, which slices out of range on impossible lengths.
func fernetHeader(token []byte) (int64, error) {
	if len(token)%4 != 0 || len(token) < fernetHeaderText {
		return 0, fmt.Errorf("%w: %d characters is not padded base64 of a token", ErrTokenInvalid, len(token))
	}
	n := len(token) / 4 * 3
	if token[len(token)-1] == '=' {
		n--
		if token[len(token)-2] == '=' {
			n--
		}
	}
	if n < fernetMinLen || (n-(fernetMinLen-16))%16 != 0 {
		return 0, fmt.Errorf("%w: decoded length %d does not fit the Fernet layout", ErrTokenInvalid, n)
	}
	var hdr [9]byte
	if _, err := base64.URLEncoding.Decode(hdr[:], token[:fernetHeaderText]); err != nil {
		return 0, fmt.Errorf("%w: not URL-safe base64", ErrTokenInvalid)
	}
	if hdr[0] != fernetVersion {
		return 0, fmt.Errorf("%w: version byte %#x", ErrTokenInvalid, hdr[0])
	}
	return int64(binary.BigEndian.Uint64(hdr[1:])), nil
}

// trimASCIISpace trims the whitespace a peer may wrap a token in.
func trimASCIISpace(b []byte) []byte {
	for len(b) > 0 && isASCIISpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isASCIISpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// fernetTextLen is the length of the token text for an n-byte message.
func fernetTextLen(n int) int {
	raw := 1 + 8 + 16 + (n/16+1)*16 + 32
	return (raw + 2) / 3 * 4
}
