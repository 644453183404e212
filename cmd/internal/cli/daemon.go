package cli

import (
	"errors"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"
)

// DaemonFlags are the flags every subcommand of a daemon has: its root
// directory and its logging.
type DaemonFlags struct {
	Root      string // --root
	LogFormat string // --log-format: text or json
	LogLevel  string // --log-level: debug, info, warn or error
}

// DefaultRoot is $XDG_DATA_HOME/containerprovider/<program>, else
// ~/.local/share/containerprovider/<program>; "" when neither is known.
func DefaultRoot(program string, getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "containerprovider", program)
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "containerprovider", program)
	}
	return ""
}

// Register defines --root (default DefaultRoot of f's program), described
// by rootUsage, --log-format and --log-level on f.
func (d *DaemonFlags) Register(f *FlagSet, rootUsage string) {
	f.StringVar(&d.Root, "root", DefaultRoot(f.Program(), f.Getenv), rootUsage)
	f.StringVar(&d.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&d.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// Check validates the flags; its error is a UsageError.
func (d *DaemonFlags) Check() error {
	if d.Root == "" {
		return UsageError{errors.New("--root: no default (neither XDG_DATA_HOME nor HOME is set): give one")}
	}
	if d.LogFormat != "text" && d.LogFormat != "json" {
		return Usagef("--log-format %q: want text or json", d.LogFormat)
	}
	if _, err := logrus.ParseLevel(d.LogLevel); err != nil {
		return Usagef("--log-level %q: want debug, info, warn or error", d.LogLevel)
	}
	return nil
}

// Logger builds the logger of the flags, writing to out. A level Check
// would refuse is read as info.
func (d *DaemonFlags) Logger(out io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(out)
	if d.LogFormat == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	lvl, err := logrus.ParseLevel(d.LogLevel)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	l.SetLevel(lvl)
	return l
}
