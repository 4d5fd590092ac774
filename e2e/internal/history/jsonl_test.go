package history

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const cfgLine = `{"t":"2026-01-01T00:00:00Z","config":{"seed":7,"round":"1s","missed_rounds":2,"removal_guard_rounds":4,` +
	`"max_removal_fraction":0.5,"deregister_after":"5s","window_rounds":3,"session_ttl":"2s","slack":"1s",` +
	`"segments":[{"name":"a","bridges":["a1","a2"],"servers":["s1","s2"]},{"name":"b","bridges":["b1"],"servers":["s3"]}]}}`

func TestReadWriteRoundTrip(t *testing.T) {
	events := testHist().
		answers(0, "s1", true).bridge(0, "a1", BridgeUp).bridge(1, "a1", BridgePaused).back(2, "a1", BridgePaused).
		registry(3, RegistryLimited).fault(3, "f1", "registry-limit").faultEnd(4, "f1", "registry-limit").
		term(1, "a1").termEnd(5, "a1").write(2, "a1", 3).
		read(2.5, map[string]Health{"s1": Passing, "x9": Critical}).readErr(2.6, "connection refused").
		add(2.7, Event{Read: &SinkRead{Sink: "consul", Servers: list("s2"), Index: 4, Foreign: map[string]uint64{"other": 3}}}).
		events()
	var buf bytes.Buffer
	if err := Write(&buf, events); err != nil {
		t.Fatal(err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	var again bytes.Buffer
	if err := Write(&again, got); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Errorf("round trip changed the history:\n%s\nwant\n%s", again.String(), buf.String())
	}
	if len(got) != len(events) {
		t.Fatalf("read %d events, wrote %d", len(got), len(events))
	}
	for i := range got {
		if got[i].Kind() != events[i].Kind() || !got[i].At.Equal(events[i].At) {
			t.Errorf("event %d: %s at %s, want %s at %s", i, got[i].Kind(), got[i].At, events[i].Kind(), events[i].At)
		}
	}
}

// TestReadForeign: a read that found no foreign entry ({}) differs from
// one that did not read them (no key), through Write and Read.
func TestReadForeign(t *testing.T) {
	in := cfgLine + "\n" +
		`{"t":"2026-01-01T00:00:01Z","read":{"sink":"consul","foreign":{}}}` + "\n" +
		`{"t":"2026-01-01T00:00:02Z","read":{"sink":"consul"}}` + "\n"
	events, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if events[1].Read.Foreign == nil || events[2].Read.Foreign != nil {
		t.Fatalf("foreign: %v, %v; want empty, nil", events[1].Read.Foreign, events[2].Read.Foreign)
	}
	var buf bytes.Buffer
	if err := Write(&buf, events); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"foreign":{}`) {
		t.Errorf("Write lost the empty foreign set:\n%s", buf.String())
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"empty", "", 0, "no config"},
		{"comments only", "# nothing\n\n", 0, "no config"},
		{"not JSON", cfgLine + "\n{\"t\":", 2, "unexpected EOF"},
		{"unknown field", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","answers":{"server":"s1","answering":true,"why":"x"}}`, 2, "unknown field"},
		{"two values", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","term":{"bridge":"a1"}} {}`, 2, "after the event"},
		{"no payload", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z"}`, 2, "no payload"},
		{"two payloads", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","term":{"bridge":"a1"},"write":{"bridge":"a1","ops":1}}`, 2, "2 payloads"},
		{"no time", cfgLine + "\n" + `{"term":{"bridge":"a1"}}`, 2, "no time"},
		{"config not first", `{"t":"2026-01-01T00:00:01Z","term":{"bridge":"a1"}}`, 1, "before the config"},
		{"second config", cfgLine + "\n" + cfgLine, 2, "a second config"},
		{"time goes back", cfgLine + "\n" + `{"t":"2025-12-31T23:59:59Z","term":{"bridge":"a1"}}`, 2, "before the previous event"},
		{"unknown bridge", cfgLine + "\n# c\n" + `{"t":"2026-01-01T00:00:01Z","bridge":{"bridge":"zz","state":"up"}}`, 3, `bridge "zz" is not in the config`},
		{"unknown server", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","answers":{"server":"zz","answering":true}}`, 2, `server "zz" is not in the config`},
		{"bad bridge state", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","bridge":{"bridge":"a1","state":"asleep"}}`, 2, `state "asleep"`},
		{"up with back", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","bridge":{"bridge":"a1","state":"up","back":true}}`, 2, "up with back"},
		{"bad registry state", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","registry":{"state":"gone"}}`, 2, `state "gone"`},
		{"fault end unstarted", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","fault":{"id":"f1","kind":"k","end":true}}`, 2, "has not started"},
		{"fault kind changes", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","fault":{"id":"f1","kind":"k"}}` + "\n" +
			`{"t":"2026-01-01T00:00:02Z","fault":{"id":"f1","kind":"j","end":true}}`, 3, `started as "k"`},
		{"bad health", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","read":{"sink":"consul","servers":{"s1":"warning"}}}`, 2, `state "warning"`},
		{"failed read lists", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","read":{"sink":"consul","err":"x","index":3}}`, 2, "lists nothing"},
		{"negative ops", cfgLine + "\n" + `{"t":"2026-01-01T00:00:01Z","write":{"bridge":"a1","ops":-1}}`, 2, "ops -1"},
		{"bad duration", strings.Replace(cfgLine, `"round":"1s"`, `"round":"1 second"`, 1), 1, `in duration "1 second"`},
		{"slack under a round", strings.Replace(cfgLine, `"slack":"1s"`, `"slack":"500ms"`, 1), 1, "slack 500ms"},
		{"server on two segments", strings.Replace(cfgLine, `"servers":["s3"]`, `"servers":["s1"]`, 1), 1, `server "s1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Read: %v; want an error with %q", err, tc.want)
			}
			var le *LineError
			switch {
			case tc.line == 0 && errors.As(err, &le):
				t.Errorf("error names line %d; want none", le.Line)
			case tc.line > 0 && (!errors.As(err, &le) || le.Line != tc.line):
				t.Errorf("error %q; want it on line %d", err, tc.line)
			}
		})
	}
}

func TestValidateConfig(t *testing.T) {
	base := testHist().cfg
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"round", func(c *Config) { c.Round = 0 }, "round 0s"},
		{"missed", func(c *Config) { c.MissedRounds = 0 }, "missed_rounds 0"},
		{"guard rounds", func(c *Config) { c.RemovalGuardRounds = -1 }, "removal_guard_rounds -1"},
		{"fraction", func(c *Config) { c.MaxRemovalFraction = -0.1 }, "max_removal_fraction"},
		{"held", func(c *Config) { c.RemovalGuardHeld = "maybe" }, "removal_guard_held"},
		{"deregister", func(c *Config) { c.DeregisterAfter = Duration(c.Round - 1) }, "deregister_after"},
		{"window", func(c *Config) { c.WindowRounds = 0 }, "window_rounds 0"},
		{"no segments", func(c *Config) { c.Segments = nil }, "no segments"},
		{"segment name twice", func(c *Config) { c.Segments[1].Name = "a" }, `segment name "a"`},
		{"bridge twice", func(c *Config) { c.Segments[1].Bridges = []string{"a1"} }, `bridge "a1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Segments = []Segment{base.Segments[0], base.Segments[1]}
			tc.mod(&c)
			err := Validate([]Event{{At: t0, Config: &c}})
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate: %v; want %q", err, tc.want)
			}
		})
	}
}

// FuzzRead: Read never panics; what it accepts, Write writes back to the
// same text (Read of that again gives the same), and Check judges without
// panicking. The seeds are small histories with every kind of event (the
// fixtures, at 3-10 KB, would make the fuzzer spend a run minimizing).
func FuzzRead(f *testing.F) {
	f.Add([]byte(cfgLine + "\n"))
	var buf bytes.Buffer
	for _, h := range []*hist{
		testHist().steady().write(2, "a1", 3).reads(2.5, 4, 0.5, all).answers(5, "s3", false).readErr(5.5, "refused"),
		testHist().steady().bridge(3, "b1", BridgePaused).back(4, "b1", BridgeCutRegistry).registry(5, RegistryWiped).
			fault(5, "f1", "wipe").faultEnd(6, "f1", "wipe").termEnd(6, "a1").
			add(7, Event{Read: &SinkRead{Sink: "consul", Servers: list("s1", "!s2"), Index: 9, Foreign: map[string]uint64{"o": 3}}}),
	} {
		buf.Reset()
		if err := Write(&buf, h.events()); err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(buf.Bytes()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		var once, twice bytes.Buffer
		if err := Write(&once, events); err != nil {
			t.Fatal(err)
		}
		again, err := Read(bytes.NewReader(once.Bytes()))
		if err != nil {
			t.Fatalf("Read of Write's output: %v\n%s", err, once.Bytes())
		}
		if err := Write(&twice, again); err != nil {
			t.Fatal(err)
		}
		if once.String() != twice.String() {
			t.Fatalf("not stable through Write and Read:\n%s\n%s", once.Bytes(), twice.Bytes())
		}
		_ = Check(events).String()
	})
}
