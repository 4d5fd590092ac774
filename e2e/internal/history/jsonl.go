package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// LineError is a problem with one line of a history file.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the line's problem.
func (e *LineError) Unwrap() error { return e.Err }

// Write writes events to w as JSON lines, one event a line, in order.
func Write(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i, e := range events {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// Read reads a history written by Write and validates it as Validate does.
// Blank lines and lines starting with # (comments, for hand-written
// fixtures) are skipped; a line with unknown fields is an error. Errors
// name the line (*LineError).
func Read(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var (
		events []Event
		v      validator
	)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &LineError{n, err}
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			e, perr := parse(t)
			if perr == nil {
				perr = v.add(e)
			}
			if perr != nil {
				return nil, &LineError{n, perr}
			}
			events = append(events, e)
		}
		if err != nil { // io.EOF
			break
		}
	}
	if err := v.done(); err != nil {
		return nil, err
	}
	return events, nil
}

// parse decodes one line into an event, refusing unknown fields and
// anything after the object.
func parse(line []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, err
	}
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		return Event{}, fmt.Errorf("%q after the event", rest[:min(len(rest), 20)])
	}
	return e, nil
}
