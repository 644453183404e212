package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestDefaultRoot(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"XDG_DATA_HOME first", map[string]string{"XDG_DATA_HOME": "/data", "HOME": "/home/u"}, "/data/containerprovider/tool"},
		{"then HOME", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/containerprovider/tool"},
		{"neither", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DefaultRoot("tool", func(k string) string { return tc.env[k] }); got != tc.want {
				t.Fatalf("DefaultRoot = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDaemonFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want DaemonFlags
		bad  string // what the error mentions; "" when Check passes
	}{
		{name: "defaults", env: map[string]string{"HOME": "/h"},
			want: DaemonFlags{Root: "/h/.local/share/containerprovider/tool", LogFormat: "text", LogLevel: "info"}},
		{name: "environment", env: map[string]string{"HOME": "/h", "TOOL_ROOT": "/srv", "TOOL_LOG_FORMAT": "json", "TOOL_LOG_LEVEL": "debug"},
			want: DaemonFlags{Root: "/srv", LogFormat: "json", LogLevel: "debug"}},
		{name: "flags", args: []string{"--root", "/r", "--log-level", "warn"},
			want: DaemonFlags{Root: "/r", LogFormat: "text", LogLevel: "warn"}},
		{name: "no root", want: DaemonFlags{LogFormat: "text", LogLevel: "info"}, bad: "--root: no default"},
		{name: "bad format", env: map[string]string{"HOME": "/h"}, args: []string{"--log-format", "xml"},
			want: DaemonFlags{Root: "/h/.local/share/containerprovider/tool", LogFormat: "xml", LogLevel: "info"}, bad: "--log-format \"xml\""},
		{name: "bad level", env: map[string]string{"HOME": "/h"}, args: []string{"--log-level", "loud"},
			want: DaemonFlags{Root: "/h/.local/share/containerprovider/tool", LogFormat: "text", LogLevel: "loud"}, bad: "--log-level \"loud\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFlagSet("tool", "serve", func(k string) string { return tc.env[k] }, io.Discard)
			var d DaemonFlags
			d.Register(f, "the root")
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if d != tc.want {
				t.Fatalf("flags %+v, want %+v", d, tc.want)
			}
			err := d.Check()
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad) || !IsUsage(err)):
				t.Fatalf("Check = %v, want a usage error that mentions %q", err, tc.bad)
			}
		})
	}
}

func TestDaemonFlagsLogger(t *testing.T) {
	var buf bytes.Buffer
	l := (&DaemonFlags{LogFormat: "json", LogLevel: "warn"}).Logger(&buf)
	l.Info("hidden")
	l.WithField("k", "v").Warn("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if line["msg"] != "shown" || line["k"] != "v" || line["level"] != "warning" {
		t.Fatalf("line %v", line)
	}

	buf.Reset()
	l = (&DaemonFlags{LogFormat: "text", LogLevel: "loud"}).Logger(&buf)
	if l.GetLevel() != logrus.InfoLevel {
		t.Fatalf("level %v for a bad one, want info", l.GetLevel())
	}
	l.Info("plain")
	if !strings.Contains(buf.String(), `msg=plain`) || !strings.Contains(buf.String(), "time=") {
		t.Fatalf("text line %q", buf.String())
	}
}
