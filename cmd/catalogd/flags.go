package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// envPrefix starts the environment variable of every flag: --log-level is
// CATALOGD_LOG_LEVEL.
const envPrefix = "CATALOGD_"

// envName is the environment variable of flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flagSet is a flag.FlagSet whose flags take their default from a
// CATALOGD_* environment variable, named in the help. A variable that does
// not parse is reported by parse, before the command line.
type flagSet struct {
	*flag.FlagSet
	getenv  func(string) string
	envErrs []error
}

func newFlagSet(name string, getenv func(string) string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &flagSet{FlagSet: fs, getenv: getenv}
}

func (f *flagSet) env(name string) (string, bool) {
	v := f.getenv(envName(name))
	return v, v != ""
}

func envUsage(name, usage string) string { return usage + " [$" + envName(name) + "]" }

func (f *flagSet) stringVar(p *string, name, def, usage string) {
	if v, ok := f.env(name); ok {
		def = v
	}
	f.StringVar(p, name, def, envUsage(name, usage))
}

func (f *flagSet) boolVar(p *bool, name string, def bool, usage string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a boolean", envName(name), v))
		} else {
			def = b
		}
	}
	f.BoolVar(p, name, def, envUsage(name, usage))
}

func (f *flagSet) sizeVar(p *int64, name string, def int64, usage string) {
	if v, ok := f.env(name); ok {
		n, err := parseSize(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s: %w", envName(name), err))
		} else {
			def = n
		}
	}
	*p = def
	f.Var((*sizeValue)(p), name, envUsage(name, "`size`: "+usage))
}

// parse checks the environment, then parses args.
func (f *flagSet) parse(args []string) error {
	if len(f.envErrs) > 0 {
		return errors.Join(f.envErrs...)
	}
	return f.Parse(args)
}

// sizeValue is a byte size flag: plain bytes, or a number with a unit.
type sizeValue int64

func (s *sizeValue) String() string { return formatSize(int64(*s)) }

func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeValue(n)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "MiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// parseSize reads a byte size: "1048576", "4MiB", "1GiB", "512KiB", "10MB"
// (units are case-insensitive; KiB/MiB/GiB/TiB are powers of 1024,
// KB/MB/GB/TB powers of 1000). It must be a whole number of bytes >= 0.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes or a number with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize writes n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// humanSize writes n in the largest binary unit below it, with a decimal.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// common are the flags of every subcommand.
type common struct {
	root      string
	logFormat string
	logLevel  string
}

// defaultRoot is $XDG_DATA_HOME/containerprovider/catalogd, else
// ~/.local/share/containerprovider/catalogd; "" when neither is known.
func defaultRoot(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "containerprovider", "catalogd")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "containerprovider", "catalogd")
	}
	return ""
}

func (c *common) register(f *flagSet) {
	f.stringVar(&c.root, "root", defaultRoot(f.getenv), "directory of the catalog: blobs, database and credentials")
	f.stringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.stringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// check validates the common flags.
func (c *common) check() error {
	if c.root == "" {
		return errors.New("--root: no default (neither XDG_DATA_HOME nor HOME is set): give one")
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	if _, err := logrus.ParseLevel(c.logLevel); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	return nil
}

// logger builds the logger of the common flags, writing to out.
func (c *common) logger(out io.Writer) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(out)
	if c.logFormat == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	lvl, err := logrus.ParseLevel(c.logLevel)
	if err != nil {
		lvl = logrus.InfoLevel // check() refused it already
	}
	l.SetLevel(lvl)
	return l
}
