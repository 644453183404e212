package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServedSince counts the blob GETs of a catalogd log from an offset,
// skips what is no request line of a blob served, and leaves a partial
// last line for the next read.
func TestServedSince(t *testing.T) {
	blob := "/v2/bench/fleet/blobs/sha256:" + strings.Repeat("ab", 32)
	lines := []string{
		`{"level":"info","msg":"request","method":"GET","path":"` + blob + `","status":200,"bytes":1000}`,
		`{"level":"info","msg":"request","method":"GET","path":"` + blob + `","status":206,"bytes":24}`,
		`{"level":"info","msg":"request","method":"HEAD","path":"` + blob + `","status":200,"bytes":0}`,
		`{"level":"info","msg":"request","method":"GET","path":"` + blob + `","status":404,"bytes":90}`,
		`{"level":"info","msg":"request","method":"GET","path":"/v2/bench/fleet/manifests/1.0.0.0","status":200,"bytes":500}`,
		`{"level":"info","msg":"listening","addr":"127.0.0.1:1"}`,
		`not json`,
	}
	first := `{"level":"info","msg":"request","method":"GET","path":"` + blob + `","status":200,"bytes":7}` + "\n"
	partial := `{"level":"info","msg":"request","method":"GET","path":"` + blob
	path := filepath.Join(t.TempDir(), "catalogd.log")
	body := first + strings.Join(lines, "\n") + "\n" + partial
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s, end, err := ServedSince(path, int64(len(first)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Served{Requests: 5, BlobGets: 2, BlobBytes: 1024}); s != want {
		t.Fatalf("ServedSince: %+v, want %+v", s, want)
	}
	if want := int64(len(body) - len(partial)); end != want {
		t.Fatalf("ServedSince stopped at %d, want %d (before the partial line)", end, want)
	}
}
