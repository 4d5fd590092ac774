package discover

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/fernet/fernet-go"
)

// specKey and specToken are the Fernet spec's verify vector (shared with
// Python's cryptography tests): "hello" stamped 1985-10-26T01:20:00-07:00.
const (
	specKey   = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	specToken = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
)

var specStamp = time.Date(1985, 10, 26, 1, 20, 0, 0, time.FixedZone("PDT", -7*3600))

func mustKey(t testing.TB, s string) *Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	return k
}

func otherKey(t testing.TB) *Key {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return mustKey(t, s)
}

func TestSealIsFernet(t *testing.T) {
	k := mustKey(t, specKey)
	now := time.Unix(1_700_000_000, 999_000_000)
	tok := k.Seal([]byte("DISCOVER_SERVER"), now)

	fk := fernet.MustDecodeKeys(specKey)
	if got := fernet.VerifyAndDecrypt(tok, 0, fk); string(got) != "DISCOVER_SERVER" {
		t.Fatalf("fernet-go decrypts Seal's token to %q", got)
	}
	raw, err := base64.URLEncoding.DecodeString(string(tok))
	if err != nil {
		t.Fatalf("token is not padded URL-safe base64: %v", err)
	}
	if raw[0] != 0x80 {
		t.Errorf("version byte %#x, want 0x80", raw[0])
	}
	if ts := int64(binary.BigEndian.Uint64(raw[1:9])); ts != now.Unix() {
		t.Errorf("timestamp %d, want %d (the injected clock)", ts, now.Unix())
	}
	if again := k.Seal([]byte("DISCOVER_SERVER"), now); bytes.Equal(again, tok) {
		t.Error("two seals returned the same token; the IV must be fresh")
	}
}

func TestOpen(t *testing.T) {
	k := mustKey(t, specKey)
	now := time.Unix(1_700_000_000, 0)
	const maxAge, skew = 60 * time.Second, 30 * time.Second
	sealed := func(at time.Time) []byte { return k.Seal([]byte("SERVER_IP:10.0.0.1"), at) }
	tests := []struct {
		name    string
		token   []byte
		key     *Key
		now     time.Time
		want    string
		wantErr error
	}{
		{"fresh", sealed(now), k, now, "SERVER_IP:10.0.0.1", nil},
		{"trailing newline", append(sealed(now), '\n'), k, now, "SERVER_IP:10.0.0.1", nil},
		{"surrounding spaces", append([]byte(" \t"), append(sealed(now), " \r\n"...)...), k, now, "SERVER_IP:10.0.0.1", nil},
		{"at max age plus skew", sealed(now.Add(-90 * time.Second)), k, now, "SERVER_IP:10.0.0.1", nil},
		{"one second too old", sealed(now.Add(-91 * time.Second)), k, now, "", ErrTokenExpired},
		{"replayed hours later", sealed(now.Add(-3 * time.Hour)), k, now, "", ErrTokenExpired},
		{"at skew ahead", sealed(now.Add(30 * time.Second)), k, now, "SERVER_IP:10.0.0.1", nil},
		{"beyond skew ahead", sealed(now.Add(31 * time.Second)), k, now, "", ErrTokenFromFuture},
		{"spec vector", []byte(specToken), k, specStamp.Add(time.Second), "hello", nil},
		{"spec vector today", []byte(specToken), k, now, "", ErrTokenExpired},
		{"wrong key", sealed(now), otherKey(t), now, "", ErrTokenInvalid},
		{"plaintext probe", []byte("DISCOVER_SERVER"), k, now, "", ErrTokenInvalid},
		{"empty", nil, k, now, "", ErrTokenInvalid},
		{"not base64", []byte("%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"), k, now, "", ErrTokenInvalid},
		{"unpadded", bytes.TrimRight([]byte(specToken), "="), k, specStamp, "", ErrTokenInvalid},
		{"truncated", []byte(specToken[:len(specToken)-8]), k, specStamp, "", ErrTokenInvalid},
		{"flipped mac", flip([]byte(specToken), len(specToken)-4), k, specStamp, "", ErrTokenInvalid},
		{"flipped timestamp", flip([]byte(specToken), 6), k, specStamp, "", ErrTokenInvalid},
		{"wrong version", versioned(sealed(now), 0x81), k, now, "", ErrTokenInvalid},
		{"nil key", sealed(now), nil, now, "", ErrTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.Open(tc.token, tc.now, maxAge, skew)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("Open returned plaintext %q with an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Open = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOpenErrorHidesKey(t *testing.T) {
	k := mustKey(t, specKey)
	_, err := otherKey(t).Open(k.Seal([]byte("x"), time.Now()), time.Now(), time.Minute, 0)
	if err == nil || bytes.Contains([]byte(err.Error()), []byte(specKey)) {
		t.Fatalf("error %v", err)
	}
}

// flip changes the base64 character at i to another valid one.
func flip(tok []byte, i int) []byte {
	out := bytes.Clone(tok)
	if out[i] == 'A' {
		out[i] = 'B'
	} else {
		out[i] = 'A'
	}
	return out
}

// versioned rewrites the version byte of a token.
func versioned(tok []byte, v byte) []byte {
	raw, _ := base64.URLEncoding.DecodeString(string(tok))
	raw[0] = v
	return []byte(base64.URLEncoding.EncodeToString(raw))
}

func FuzzOpen(f *testing.F) {
	k, _ := ParseKey(specKey)
	now := time.Unix(1_700_000_000, 0)
	f.Add([]byte(specToken))
	f.Add(k.Seal([]byte("SERVER_IP:10.0.0.1"), now))
	f.Add([]byte("DISCOVER_SERVER"))
	f.Add([]byte("gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA=="))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, token []byte) {
		msg, err := k.Open(token, now, time.Minute, 30*time.Second)
		if err == nil {
			// Garbage never opens: an opening token must be authentic, i.e.
			// fernet-go agrees on its own.
			if fernet.VerifyAndDecrypt(trimASCIISpace(token), 0, []*fernet.Key{&k.k}) == nil {
				t.Fatalf("Open accepted %q which fernet-go rejects", token)
			}
			_ = msg
		}
	})
}
