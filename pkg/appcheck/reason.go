package appcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// The reasons are the checker's own words, chosen by the error's type:
// never text a server sent (a reason phrase, a header, the body), nor an
// error string that may quote it (a malformed response's, a bad
// Location's).

// statusText is the Reason of a response: its code and the standard
// text of that code ("503 Service Unavailable"), never the server's own
// reason phrase.
func statusText(status int) string {
	code := strconv.Itoa(status)
	if t := http.StatusText(status); t != "" {
		return code + " " + t
	}
	return code
}

func reasonTimeout(d time.Duration) string { return "timeout after " + d.String() }

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// reasonOf names the class of err, a check's failure that is not its
// deadline.
func reasonOf(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		badName   x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
		errno     syscall.Errno
		op        *net.OpError
	)
	switch {
	case err == nil:
		return "failed"
	case errors.Is(err, errTooLarge):
		return "response headers too large"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.As(err, &unknownCA):
		return "certificate signed by unknown authority"
	case errors.As(err, &badName):
		return "certificate is not valid for " + badName.Host
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return "certificate expired or not yet valid"
		}
		return "certificate invalid"
	case errors.As(err, &notTLS):
		return "not a TLS server"
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert: its text comes from crypto/tls's table of alerts.
		return "TLS alert: " + strings.TrimPrefix(op.Err.Error(), "tls: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed early"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &op) && op.Op == "dial":
		return "connect failed"
	}
	return "no valid HTTP response"
}

// clampReason makes s one line of at most MaxReason bytes.
func clampReason(s string) string {
	if len(s) <= MaxReason && !strings.ContainsFunc(s, isControl) {
		return s
	}
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError }
