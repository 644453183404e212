package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
)

// envPrefix starts the environment variable of every flag: --log-level is
// PROVIDERD_LOG_LEVEL.
const envPrefix = "PROVIDERD_"

// envName is the environment variable of flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// flagSet is a flag.FlagSet whose flags take their default from a
// PROVIDERD_* environment variable, named in the help. A variable that
// does not parse is reported by parse, before the command line.
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

func (f *flagSet) intVar(p *int, name string, def int, usage string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a number", envName(name), v))
		} else {
			def = n
		}
	}
	f.IntVar(p, name, def, envUsage(name, usage))
}

// sourcesVar registers a repeatable NAME=URL flag. Its environment
// variable holds a comma-separated list. The first use on the command line
// replaces the default (from the environment or def) rather than adding to
// it.
func (f *flagSet) sourcesVar(p *[]api.Source, name string, def []api.Source, usage string) {
	if v, ok := f.env(name); ok {
		var list []api.Source
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			s, err := parseSource(item)
			if err != nil {
				f.envErrs = append(f.envErrs, fmt.Errorf("%s: %w", envName(name), err))
				continue
			}
			list = append(list, s)
		}
		def = list
	}
	*p = def
	f.Var(&sourcesValue{list: p}, name, envUsage(name, "`NAME=URL`: "+usage))
}

// sourcesValue is the value of a repeatable NAME=URL flag.
type sourcesValue struct {
	list *[]api.Source
	set  bool // the command line gave one already
}

func (v *sourcesValue) String() string {
	if v == nil || v.list == nil {
		return ""
	}
	parts := make([]string, 0, len(*v.list))
	for _, s := range *v.list {
		parts = append(parts, s.Name+"="+s.Location)
	}
	return strings.Join(parts, ",")
}

func (v *sourcesValue) Set(s string) error {
	src, err := parseSource(s)
	if err != nil {
		return err
	}
	if !v.set {
		*v.list, v.set = nil, true
	}
	for _, have := range *v.list {
		if strings.EqualFold(have.Name, src.Name) {
			return fmt.Errorf("source %q given twice", src.Name)
		}
	}
	*v.list = append(*v.list, src)
	return nil
}

// sourceName is what the provider accepts as a source name.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// parseSource reads NAME=URL, URL an http or https base URL.
func parseSource(s string) (api.Source, error) {
	name, loc, ok := strings.Cut(s, "=")
	if !ok {
		return api.Source{}, fmt.Errorf("source %q: want NAME=URL", s)
	}
	if !sourceName.MatchString(name) {
		return api.Source{}, fmt.Errorf("source %q: the name must be 1 to 64 of A-Z a-z 0-9 . _ -", s)
	}
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return api.Source{}, fmt.Errorf("source %q: the URL must be http://host[:port] or https://host[:port]", s)
	}
	return api.Source{Name: name, Location: strings.TrimSuffix(loc, "/")}, nil
}

// parse checks the environment, then parses args.
func (f *flagSet) parse(args []string) error {
	if len(f.envErrs) > 0 {
		return errors.Join(f.envErrs...)
	}
	return f.Parse(args)
}

// defaultRoot is $XDG_DATA_HOME/containerprovider/providerd, else
// ~/.local/share/containerprovider/providerd; "" when neither is known.
func defaultRoot(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "containerprovider", "providerd")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "containerprovider", "providerd")
	}
	return ""
}

// newLogger builds the logger of --log-format and --log-level, writing to
// out. Both were checked already.
func newLogger(out io.Writer, format, level string) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(out)
	if format == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		lvl = logrus.InfoLevel
	}
	l.SetLevel(lvl)
	return l
}
