// Package appcheck checks that a discovered server's app serves: a UDP
// discovery answer proves that the server's discovery listener lives, not
// that its web app does (the stock server can run the listener in a
// process of its own, or beside wedged workers).
//
// # What a check is
//
// A check is one attempt, bounded by Options.Timeout, against one address
// and port, the one the server announced:
//
//	tcp    connect, then close: passes when the connection is accepted
//	http   GET Options.Path: passes when the status is in Options.Status
//	       (200-399 by default)
//	https  the same over TLS, verified against Options.CAFile (or the
//	       system's roots) for Options.TLSServerName (or the IP address,
//	       which the certificate must then hold), unless
//	       Options.InsecureSkipVerify says not to verify
//
// New builds a Checker from Options; Checker.Check runs one check and
// returns a Result; CheckServers checks many servers at once. Whether a
// server is ready is a judgement over several results (rise and fall, in
// the bridge's internal/checker), not one Result's.
//
// # Result
//
// Result.Reason says why in a few words of the checker's own, at most
// MaxReason bytes on one line:
//
//	200 OK                               a response: code and standard text
//	503 Service Unavailable
//	302 Found (redirect to another host not followed)
//	302 Found (more than 3 redirects)
//	200 OK, reading the body: timeout after 2s
//	ok                                   a tcp check that connected
//	connection refused, connection reset, host unreachable, ...
//	timeout after 2s
//	certificate signed by unknown authority
//	certificate is not valid for app.example.com
//	not a TLS server
//
// Result.Output is the one line a registry shows (a Consul check's output,
// the file sink's, `bridge explain`'s), always
//
//	<KIND> <what>: <Reason> in <ms> ms
//
// with KIND TCP, HTTP or HTTPS, what "connect" or "GET <path>", and the
// latency rounded to the millisecond:
//
//	TCP connect: ok in 1 ms
//	HTTP GET /healthz: 503 Service Unavailable in 4 ms
//	HTTPS GET /: timeout after 2s in 2001 ms
//
// # Security
//
// The servers checked may be hostile; the rules:
//
//   - A check connects only to the address it is given (every connection
//     of an http check, a followed redirect's too, is dialled to it,
//     whatever the URL names); the bridge gives only servers it
//     discovered and admitted.
//   - Redirects are followed at most MaxRedirects times, and only when
//     the Location names the same scheme, host (the IP address, or
//     TLSServerName) and port; any other redirect is not followed: the 3xx
//     response itself is judged by Options.Status, and Reason says so. No
//     proxy is used, and nothing is resolved by DNS.
//   - At most MaxBody bytes of a body are read, then the connection is
//     closed; nothing of it is kept. Response headers are bounded too
//     (16 KiB).
//   - Reason and Output never hold bytes the server sent (not its reason
//     phrase, a header, the body, nor an error text quoting them): they are
//     chosen from the error's type and the status code's standard text.
//   - No connection outlives its check: each exchange has a connection of
//     its own ("Connection: close"), closed when the check ends, and no
//     pool holds any, so checking 10,000 servers holds no descriptor
//     between checks. A tcp check closes with a reset (SO_LINGER 0), as
//     health checkers commonly do, so that 10,000 checks every 10 s leave
//     no TIME_WAIT sockets behind.
//   - One deadline, Options.Timeout, bounds the whole check: connect,
//     TLS handshake, request, headers and body.
//   - Requests carry the User-Agent UserAgent, and Host: TLSServerName
//     when set, else the address checked (ip:port). HTTP/1.1 only.
//
// An http check runs on its caller's goroutine with net/http's wire code
// (Request.Write, ReadResponse) rather than an http.Transport, whose pool
// would never reuse a connection here and whose per-connection goroutines
// cost a third of an http check's CPU time (10,000 checks: about 1.0 s
// instead of 1.45 s on the benchmark's loopback).
package appcheck
