package cli

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFirstLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"one line", "s3cret\n", "s3cret"},
		{"no line break", "s3cret", "s3cret"},
		{"CRLF", "s3cret\r\nmore\n", "s3cret"},
		{"second line ignored", "first\nsecond\n", "first"},
		{"empty", "", ""},
		{"spaces kept", "  a b  \n", "  a b  "},
		{"at most 4 KiB", strings.Repeat("x", 5000), strings.Repeat("x", 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FirstLine(strings.NewReader(tc.in))
			if err != nil || got != tc.want {
				t.Fatalf("FirstLine = %q, %v, want %q", got, err, tc.want)
			}
		})
	}
	boom := errors.New("boom")
	if _, err := FirstLine(io.MultiReader(strings.NewReader("partial"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
