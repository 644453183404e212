package publish

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// seedDomain separates the PRNG seeds of this package from any other use of
// the same names. Changing it changes every seeded digest.
const seedDomain = "containerprovider/catalog/publish/v1"

// GeneratedLayer is a layer of deterministic content: a tar of a few files
// under Files/Windows/ whose contents add up to size bytes, a short text file
// naming seed followed by bytes from a ChaCha8 generator seeded from seed.
// The same seed and size give the same bytes on every machine and with every
// Go release, since ChaCha8's output is specified. Generation runs at
// memory speed and in constant memory, whatever the size.
func GeneratedLayer(seed string, size int64) Layer {
	return Layer{src: &generatedSource{
		seed: seed,
		size: size,
		text: []textFile{{name: "Files/Windows/System32/version.txt", body: seed + "\r\n"}},
		fill: []string{
			"Files/Windows/System32/ntoskrnl.exe",
			"Files/Windows/System32/kernel32.dll",
			"Files/Windows/System32/config/SOFTWARE",
			"Files/Windows/System32/ntdll.dll",
		},
	}}
}

// appLayer is the small layer of a seeded application image: a README with
// the description, a VERSION file, and an install log of generated text lines
// filling the layer up to size bytes.
func appLayer(repo, version, description string, size int64) Layer {
	dir := "Files/Program Files/" + path.Base(repo) + "/"
	return Layer{src: &generatedSource{
		seed: repo + ":" + version,
		size: size,
		text: []textFile{
			{name: dir + "README.txt", body: description + "\r\n"},
			{name: dir + "VERSION.txt", body: version + "\r\n"},
		},
		fill:     []string{dir + "install.log"},
		textFill: true,
	}}
}

type textFile struct{ name, body string }

// generatedSource is generated content: the text files first, then the fill
// files share the remaining bytes (each takes half of what is left, the last
// one the rest).
type generatedSource struct {
	seed     string
	size     int64
	text     []textFile
	fill     []string
	textFill bool // fill with printable lines instead of random bytes
}

func (g *generatedSource) describe() string { return fmt.Sprintf("generated layer %q", g.seed) }

func (g *generatedSource) check() error {
	if g.size < 0 {
		return fmt.Errorf("%s: size %d: %w", g.describe(), g.size, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (g *generatedSource) rng() *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256([]byte(seedDomain + "\x00" + g.seed)))
}

type genEntry struct {
	name string
	size int64
	body string // text files
	fill bool
}

// entries lays the files out: directories, text files (cut short if size is
// smaller than the text), fill files; in lexical order.
func (g *generatedSource) entries() []genEntry {
	left := g.size
	var es []genEntry
	dirs := map[string]bool{}
	addDirs := func(name string) {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	for _, tf := range g.text {
		body := tf.body
		if int64(len(body)) > left {
			body = body[:left]
		}
		left -= int64(len(body))
		es = append(es, genEntry{name: tf.name, size: int64(len(body)), body: body})
		addDirs(tf.name)
	}
	for i, name := range g.fill {
		n := left / 2
		if i == len(g.fill)-1 {
			n = left
		}
		left -= n
		es = append(es, genEntry{name: name, size: n, fill: true})
		addDirs(name)
	}
	for d := range dirs {
		es = append(es, genEntry{name: d})
	}
	slices.SortFunc(es, func(a, b genEntry) int { return strings.Compare(a.name, b.name) })
	return es
}

// genBufferSize is the chunk in which fill bytes are generated and written.
const genBufferSize = 256 << 10

func (g *generatedSource) writeTar(w io.Writer, created time.Time) error {
	tw := tar.NewWriter(w)
	rng := g.rng()
	buf := make([]byte, genBufferSize)
	line := 0
	for _, e := range g.entries() {
		if err := writeTarEntry(tw, e.name, e.size, created); err != nil {
			return fmt.Errorf("%s: %s: %w", g.describe(), e.name, err)
		}
		var err error
		switch {
		case e.body != "":
			_, err = io.WriteString(tw, e.body)
		case e.fill && g.textFill:
			line, err = writeTextFill(tw, rng, e.size, buf, line)
		case e.fill:
			err = writeRandomFill(tw, rng, e.size, buf)
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", g.describe(), e.name, err)
		}
	}
	return tw.Close()
}

func writeRandomFill(w io.Writer, rng *rand.ChaCha8, n int64, buf []byte) error {
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		_, _ = rng.Read(chunk) // never fails
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		n -= int64(len(chunk))
	}
	return nil
}

// writeTextFill writes n bytes of lines like "00000001 <32 hex digits>\r\n",
// the last one cut short to fit. It returns the next line number.
func writeTextFill(w io.Writer, rng *rand.ChaCha8, n int64, buf []byte, line int) (int, error) {
	var raw [16]byte
	for n > 0 {
		b := buf[:0]
		for len(b)+64 <= cap(buf) && int64(len(b)) < n {
			line++
			_, _ = rng.Read(raw[:])
			b = append(b, fmt.Sprintf("%08d ", line)...)
			b = hex.AppendEncode(b, raw[:])
			b = append(b, "\r\n"...)
		}
		if int64(len(b)) > n {
			b = b[:n]
		}
		if _, err := w.Write(b); err != nil {
			return line, err
		}
		n -= int64(len(b))
	}
	return line, nil
}
