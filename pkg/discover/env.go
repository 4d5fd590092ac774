package discover

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/udp-discovery-bridge/bridge/pkg/setting"
)

// EnvError is an environment variable whose value LoadOptions cannot use.
// Its message names the configuration key, the variable and the value, as
// `timeout (env DISCOVERY_CLIENT_TIMEOUT): bad value "soon": want seconds
// (5, 0.5) or a duration (500ms, 1m)`, in the words of the bridge
// command; a secret key is shown as [redacted], never as its value.
type EnvError struct {
	Key   string // upstream configuration key, e.g. "timeout"
	Var   string // the variable the value came from
	Value string // the value as set; empty for a secret key
	Err   error  // what is wrong with it (ErrInvalidKey for a bad key)

	secret bool
}

func (e *EnvError) Error() string {
	v := strconv.Quote(e.Value)
	if e.secret {
		v = "[redacted]"
	}
	return fmt.Sprintf("%s (env %s): bad value %s: %v", e.Key, e.Var, v, e.Err)
}

// Unwrap returns Err.
func (e *EnvError) Unwrap() error { return e.Err }

// envLoad is LoadOptions' state: the options so far and what the
// encryption keys said.
type envLoad struct {
	o            Options
	vars         map[string]string // key -> the variable it was read from
	encryption   bool
	key, keyFile string
}

// OptionsFromEnv is LoadOptions with the process environment
// (os.LookupEnv): upstream's ClientConfig.from_env() and, with overrides,
// load_config(**overrides).
func OptionsFromEnv(overrides ...func(*Options)) (Options, error) {
	return LoadOptions(os.LookupEnv, overrides...)
}

// LoadOptions builds Options as the upstream client builds its
// configuration: DefaultOptions, then the DISCOVERY_CLIENT_* environment
// variables read with lookupEnv, then overrides in order (each sets the
// fields it wants), so defaults < environment < overrides. The result is
// validated as New validates it.
//
// The variables are those of Keys: upstream's DISCOVERY_CLIENT_* names
// (and DISCOVERY_ENCRYPTION_ENABLED, DISCOVERY_SECRET_KEY) plus the
// bridge's, with the bridge command's rules and bounds: durations are
// seconds ("5", "0.5") or Go durations ("500ms"); booleans true/1/yes/on or
// false/0/no/off; lists comma-separated; ports 1..65535. Where two
// variables name one key the first one set wins.
//
// Encryption on (from the environment) with no key from the environment or
// an override, or with a key that does not parse, is an error, never a
// silent fall back to plaintext. Without encryption on, a key in the
// environment is ignored. An override that sets Key turns encryption on.
//
// Every problem is reported at once (errors.Join): each bad variable as an
// *EnvError naming it and its value (never a secret key's), then what
// validation finds in the final Options, named by configuration key. A bad
// variable leaves its field at the default, so it is reported once.
func LoadOptions(lookupEnv func(string) (string, bool), overrides ...func(*Options)) (Options, error) {
	l := envLoad{o: DefaultOptions(), vars: map[string]string{}}
	var errs []error
	for _, f := range fields {
		for _, name := range f.Env {
			v, ok := lookupEnv(name)
			if !ok {
				continue
			}
			l.vars[f.Name] = name
			if err := l.apply(f, v); err != nil {
				e := &EnvError{Key: f.Name, Var: name, Value: v, Err: err, secret: f.Secret}
				if f.Secret {
					e.Value = ""
				}
				errs = append(errs, e)
			}
			break // the first variable set wins
		}
	}
	if l.encryption {
		if err := l.loadKey(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range overrides {
		f(&l.o)
	}
	if l.encryption && l.o.Key == nil && l.key == "" && l.keyFile == "" {
		vars := append(slices.Clone(fieldNamed(keySecret).Env), fieldNamed(keySecretFile).Env...)
		errs = append(errs, fmt.Errorf("encryption_enabled (env %s): encryption is on but no secret key is set (%s or an override of Key)",
			l.vars["encryption_enabled"], strings.Join(vars, ", ")))
	}
	errs = append(errs, validate(withDefaults(l.o)))
	return l.o, errors.Join(errs...)
}

// apply parses v, the value of f's variable, and stores it; a bad value
// leaves the default. A bad element of a list is named in the error.
func (l *envLoad) apply(f field, v string) error {
	typed, err := f.Parse(v)
	if err == nil {
		switch {
		case f.set != nil:
			err = f.set(&l.o, typed)
		case f.Name == keyEncryption:
			l.encryption = typed.(bool)
		case f.Name == keySecret:
			l.key = strings.TrimSpace(typed.(string))
		case f.Name == keySecretFile:
			l.keyFile = typed.(string)
		}
	}
	var ve *setting.ValueError
	if errors.As(err, &ve) && f.Kind == setting.List {
		return fmt.Errorf("%q: %s", ve.Value, ve.Why)
	}
	return err
}

// loadKey reads and parses the key from the environment, when one is set.
// Its errors name the variable (and file), never the key.
func (l *envLoad) loadKey() error {
	keyVar, fileVar := l.vars["secret_key"], l.vars["secret_key_file"]
	switch {
	case l.key != "" && l.keyFile != "":
		return fmt.Errorf("secret_key (env %s) and secret_key_file (env %s): set one, not both", keyVar, fileVar)
	case l.keyFile != "":
		b, err := os.ReadFile(l.keyFile)
		if err != nil {
			return fmt.Errorf("secret_key_file (env %s): read secret key file: %w", fileVar, err)
		}
		k, err := ParseKey(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("secret_key_file (env %s) %s: %w", fileVar, l.keyFile, err)
		}
		l.o.Key = k
	case l.key != "":
		k, err := ParseKey(l.key)
		if err != nil {
			return &EnvError{Key: "secret_key", Var: keyVar, Err: err, secret: true}
		}
		l.o.Key = k
	}
	return nil // no key: reported after the overrides, which may set Key
}
