package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestEnvName(t *testing.T) {
	for _, tc := range []struct {
		name, program, flag, want string
	}{
		{"plain", "catalogd", "root", "CATALOGD_ROOT"},
		{"dashes", "catalogd", "max-blob-size", "CATALOGD_MAX_BLOB_SIZE"},
		{"dashed program", "my-tool", "log-level", "MY_TOOL_LOG_LEVEL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EnvName(tc.program, tc.flag); got != tc.want {
				t.Fatalf("EnvName(%q, %q) = %q, want %q", tc.program, tc.flag, got, tc.want)
			}
		})
	}
}

// listValue is a comma-separated list whose command-line uses add one item
// each, and whose variable holds the whole list.
type listValue struct{ items *[]string }

func (v listValue) String() string {
	if v.items == nil {
		return ""
	}
	return strings.Join(*v.items, ",")
}

func (v listValue) Set(s string) error {
	if s == "" {
		return errors.New("empty item")
	}
	*v.items = append(*v.items, s)
	return nil
}

func (v listValue) SetEnv(s string) error {
	var errs []error
	*v.items = nil
	for _, item := range strings.Split(s, ",") {
		if strings.HasPrefix(item, "!") {
			errs = append(errs, errors.New("bad item "+item))
			continue
		}
		*v.items = append(*v.items, item)
	}
	return errors.Join(errs...)
}

// testFlags are flags of every kind on one flag set.
type testFlags struct {
	s    string
	b    bool
	n    int
	size int64
	list []string
}

func newTestFlags(env map[string]string, out io.Writer) (*FlagSet, *testFlags) {
	f := NewFlagSet("tool", "run", func(k string) string { return env[k] }, out)
	v := &testFlags{}
	f.StringVar(&v.s, "name", "dflt", "a name")
	f.BoolVar(&v.b, "dry-run", false, "do nothing")
	f.IntVar(&v.n, "count", 3, "how many")
	f.SizeVar(&v.size, "max-size", 4<<20, "largest")
	f.Var(listValue{&v.list}, "item", "an item")
	return f, v
}

func TestFlagSetDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want testFlags
	}{
		{"built-in defaults", nil, nil, testFlags{s: "dflt", n: 3, size: 4 << 20}},
		{"from the environment", map[string]string{
			"TOOL_NAME": "env", "TOOL_DRY_RUN": "true", "TOOL_COUNT": "7", "TOOL_MAX_SIZE": "1GiB", "TOOL_ITEM": "a,b",
		}, nil, testFlags{s: "env", b: true, n: 7, size: 1 << 30, list: []string{"a", "b"}}},
		{"flags over the environment", map[string]string{"TOOL_NAME": "env", "TOOL_COUNT": "7", "TOOL_MAX_SIZE": "1GiB"},
			[]string{"--name", "flag", "--count", "9", "--max-size", "512KiB", "--item", "x"},
			testFlags{s: "flag", n: 9, size: 512 << 10, list: []string{"x"}}},
		{"an empty variable is unset", map[string]string{"TOOL_NAME": "", "TOOL_COUNT": ""}, nil, testFlags{s: "dflt", n: 3, size: 4 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, v := newTestFlags(tc.env, io.Discard)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if v.s != tc.want.s || v.b != tc.want.b || v.n != tc.want.n || v.size != tc.want.size ||
				strings.Join(v.list, ",") != strings.Join(tc.want.list, ",") {
				t.Fatalf("got %+v, want %+v", *v, tc.want)
			}
		})
	}
}

func TestFlagSetBadEnvironment(t *testing.T) {
	env := map[string]string{
		"TOOL_DRY_RUN":  "maybe",
		"TOOL_COUNT":    "many",
		"TOOL_MAX_SIZE": "big",
		"TOOL_ITEM":     "a,!b,!c",
	}
	f, _ := newTestFlags(env, io.Discard)
	err := f.Parse([]string{"--name", "x"})
	if err == nil {
		t.Fatal("Parse accepted bad variables")
	}
	want := `TOOL_DRY_RUN="maybe": not a boolean
TOOL_COUNT="many": not a number
TOOL_MAX_SIZE: size "big": want bytes or a number with a unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)
TOOL_ITEM: bad item !b
TOOL_ITEM: bad item !c`
	if err.Error() != want {
		t.Fatalf("error:\n%s\nwant:\n%s", err, want)
	}
}

func TestFlagSetHelp(t *testing.T) {
	var out bytes.Buffer
	f, _ := newTestFlags(map[string]string{"TOOL_COUNT": "5", "TOOL_ITEM": "p,q"}, &out)
	f.PrintDefaults()
	want := `  -count int
    	how many [$TOOL_COUNT] (default 5)
  -dry-run
    	do nothing [$TOOL_DRY_RUN]
  -item value
    	an item [$TOOL_ITEM] (default p,q)
  -max-size size
    	size: largest [$TOOL_MAX_SIZE] (default 4MiB)
  -name string
    	a name [$TOOL_NAME] (default "dflt")
`
	if out.String() != want {
		t.Fatalf("help:\n%s\nwant:\n%s", out.String(), want)
	}
}
