package setting

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/udp-discovery-bridge/bridge/internal/duration"
)

// This file checks a parsed value against its key: kind, OneOf, pattern,
// length, uniqueness and bounds, with the words of each refusal.

// Check checks v, a value of k's Kind as Parse returns it, against k's
// bounds, OneOf and NonEmpty: the library checks the values a program sets
// in code with it, so they meet the bounds a file or flag must meet. The
// error is a *ValueError.
func (k Key) Check(v any) error {
	if v != nil && !k.holds(v) {
		return &ValueError{Value: fmt.Sprint(v), Why: fmt.Sprintf("want a %s value, got %T", k.Kind, v)}
	}
	switch t := v.(type) {
	case string:
		if k.NonEmpty && t == "" {
			return &ValueError{Value: t, Why: k.hinted("must not be empty")}
		}
		return k.oneOf(t)
	case []string:
		if k.NonEmpty && len(t) == 0 {
			return &ValueError{Why: k.hinted("must not be empty")}
		}
		for i, e := range t {
			if err := k.oneOf(e); err != nil {
				return err
			}
			if k.Unique && slices.Contains(t[:i], e) {
				return &ValueError{Value: e, Why: "listed twice"}
			}
		}
		return nil
	case uint16:
		if t == 0 && k.Kind == Port {
			return &ValueError{Value: "0", Why: "want a port number 1..65535"}
		}
		return k.bounds(float64(t), strconv.Itoa(int(t)))
	case int:
		return k.bounds(float64(t), strconv.Itoa(t))
	case float64:
		return k.bounds(t, strconv.FormatFloat(t, 'g', -1, 64))
	case time.Duration:
		return k.bounds(float64(t), t.String())
	}
	return nil
}

// holds reports whether v has the type Parse returns for k's Kind.
func (k Key) holds(v any) bool {
	switch v.(type) {
	case string:
		return k.Kind == String
	case int:
		return k.Kind == Int
	case uint16:
		return k.Kind == Port
	case bool:
		return k.Kind == Bool
	case time.Duration:
		return k.Kind == Duration
	case []string:
		return k.Kind == List
	case float64:
		return k.Kind == Float
	}
	return false
}

func (k Key) oneOf(s string) error {
	if len(k.OneOf) > 0 && !slices.Contains(k.OneOf, s) {
		return &ValueError{Value: s, Why: "want one of " + strings.Join(k.OneOf, ", ")}
	}
	if s == "" {
		return nil
	}
	if k.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + k.Pattern + `)$`)
		if err != nil { // the declaration's own mistake: a test compiles every pattern
			return &ValueError{Value: s, Why: fmt.Sprintf("key %s has a bad pattern %q: %v", k.Name, k.Pattern, err)}
		}
		if !re.MatchString(s) {
			why := k.PatternHint
			if why == "" {
				why = "want a value matching " + k.Pattern
			}
			return &ValueError{Value: s, Why: why}
		}
	}
	if k.MaxLen > 0 && utf8.RuneCountInString(s) > k.MaxLen {
		return &ValueError{Value: s, Why: k.hinted(fmt.Sprintf("at most %d characters, got %d", k.MaxLen, utf8.RuneCountInString(s)))}
	}
	return nil
}

// bounds checks x (a number, or a duration in nanoseconds) against Min
// and Max; shown is x as written in a message.
func (k Key) bounds(x float64, shown string) error {
	lo, hasLo := k.bound(k.Min)
	hi, hasHi := k.bound(k.Max)
	below := hasLo && (x < lo || (k.MinExclusive && x == lo))
	above := hasHi && x > hi
	if !below && !above {
		return nil
	}
	return &ValueError{Value: shown, Why: k.hinted(k.boundsWhy(below))}
}

// hinted appends k's Hint to why.
func (k Key) hinted(why string) string {
	if k.Hint == "" {
		return why
	}
	return why + " " + k.Hint
}

// boundsWhy words the bounds of k, from the side that failed.
func (k Key) boundsWhy(below bool) string {
	op := ">="
	if k.MinExclusive {
		op = ">"
	}
	switch {
	case k.Kind == Float && k.Min != "" && k.Max != "":
		lt := "<="
		if k.MinExclusive {
			lt = "<"
		}
		return fmt.Sprintf("want a fraction %s %s f <= %s", k.Min, lt, k.Max)
	case k.Kind == Int && k.Min != "" && k.Max != "" && !k.MinExclusive:
		return fmt.Sprintf("want %s..%s", k.Min, k.Max)
	case !below:
		return "at most " + k.Max
	case k.Kind == Duration && !k.MinExclusive && k.Min != "0":
		return "at least " + k.Min
	}
	return fmt.Sprintf("must be %s %s", op, k.Min)
}

// bound parses a bound in k's syntax; false for none.
func (k Key) bound(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	if k.Kind == Duration {
		d, err := duration.Parse(s)
		if err != nil {
			panic(fmt.Sprintf("setting: key %s: bad bound %q: %v", k.Name, s, err))
		}
		return float64(d), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("setting: key %s: bad bound %q: %v", k.Name, s, err))
	}
	return f, true
}
