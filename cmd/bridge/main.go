// Command bridge finds django-udp-discovery servers by UDP broadcast and keeps
// service registries (Consul, a JSON file, stdout) in step with what it sees.
//
// main.go is wiring only: one file per subcommand, the logic lives in pkg/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/urfave/cli/v2"

	"github.com/udp-discovery-bridge/bridge/internal/sink"
	"github.com/udp-discovery-bridge/bridge/internal/sink/builtin"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0
	exitNone     = 1 // ran fine, found nothing
	exitUsage    = 2 // bad usage or configuration
	exitDiffers  = 3 // run --once --dry-run: the registry differs
	exitInternal = 4 // a runtime failure (socket, registry) stopped the command
	// exitInterrupted is the shell's convention (128 + SIGINT) for a
	// one-shot command stopped by SIGINT, SIGTERM or SIGHUP.
	exitInterrupted = 130
)

// exitError carries an exit code through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error   { return &exitError{code: exitUsage, err: err} }
func runtimeErr(err error) error { return &exitError{code: exitInternal, err: err} }
func quietExit(code int) error   { return &exitError{code: code} }

// interrupted returns the error of a one-shot command whose ctx a signal
// cancelled (exit 130, naming the signal), or nil while ctx is live.
func interrupted(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted (%w)", context.Cause(ctx))}
}

// stopSignals end every command: a one-shot command exits 130, `run` and
// `respond` stop gracefully (flush the sinks, --on-exit) and exit 0.
// SIGHUP is one of them rather than Go's default (exit 129, no shutdown):
// the bridge has no configuration reload.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Millisecond timestamps in JSON logs; set once, before anything logs.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// Durations as people write them ("10s", "1.5ms"), not milliseconds
	// as a float.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, builtin.Registry(), args, stdout, stderr)
}

// runWith is run with the sinks of reg.
func runWith(ctx context.Context, reg *sink.Registry, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr, reg)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "bridge: %v\n", ee.err)
		}
		return ee.code
	}
	// Anything else comes from flag parsing in urfave/cli: bad usage.
	fmt.Fprintf(stderr, "bridge: %v\n", err)
	return exitUsage
}

// newApp builds the CLI for the sinks of reg: the flags, environment
// variables, help and validation of --sink and of each sink's settings come
// from it.
func newApp(stdout, stderr io.Writer, reg *sink.Registry) *cli.App {
	schema := reg.Schema()
	return &cli.App{
		Name:  "bridge",
		Usage: "find django-udp-discovery servers by UDP broadcast and export them to registries (sinks: " + strings.Join(reg.Names(), ", ") + ")",
		Description: "Discovery is compatible with django-udp-discovery (plain and Fernet-encrypted).\n" +
			"Configuration: defaults < --config file < environment < flags; every key is listed in bridge.example.yaml.\n" +
			"Exit codes: 0 ok/found, 1 nothing found, 2 bad usage or configuration, 3 --once --dry-run found differences, 4 runtime failure,\n" +
			"130 interrupted (SIGINT, SIGTERM or SIGHUP stopped a one-shot command, or any command while it loaded its configuration).",
		Version:              version,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags:                globalFlags(schema),
		EnableBashCompletion: true,
		HideVersion:          true,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageErr(err)
		},
		Commands: []*cli.Command{
			runCommand(reg, schema),
			discoverCommand(schema),
			interfacesCommand(schema),
			doctorCommand(reg, schema),
			configCommand(schema),
			respondCommand(schema),
			keygenCommand(),
			healthcheckCommand(schema),
			explainCommand(schema),
			versionCommand(),
		},
	}
}
