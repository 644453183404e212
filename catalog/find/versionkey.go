package find

import (
	"encoding/binary"
	"strconv"
	"strings"

	goversion "github.com/hashicorp/go-version"
)

// VersionKey encodes version so that comparing keys as bytes orders the
// versions as listings show them, a total order:
//
//   - a version that go-version does not parse sorts before every one that
//     it does, and such versions sort by their text;
//   - parsed versions sort by their numeric segments, with trailing zero
//     segments ignored (1.0 and 1.0.0 are equal, as go-version compares
//     them);
//   - a prerelease sorts before its release (1.0-rc1 < 1.0);
//   - prereleases sort part by part (split at "."): a numeric part by value
//     and before a text part, text parts by their bytes, and a prerelease
//     that runs out of parts first sorts first.
//
// Where go-version's Compare is itself consistent it agrees with this order.
// Compare has two inconsistencies, resolved here: it ignores a prerelease
// against a version of another number of segments (9.0 equals 9.0.0.0-rc1,
// which is below 9.0.0.0), and a missing prerelease part is below a
// numeric part but above a text one; here a prerelease is always below its
// release, and a missing part is always lowest. Build
// metadata ("+…") is ignored, as Compare ignores it; callers break ties by
// the version's text.
//
// The encoding is prefix-free, so that a key can be followed by more
// fields.
func VersionKey(version string) []byte {
	v, err := goversion.NewVersion(version)
	if err != nil {
		// 0x01, the text escaped so that it holds no 0x00, then 0x00.
		return appendText([]byte{0x01}, version)
	}
	key := []byte{0x02}
	segs := v.Segments64()
	for len(segs) > 0 && segs[len(segs)-1] == 0 {
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		key = appendInt(append(key, 0x01), s)
	}
	key = append(key, 0x00)
	pre := v.Prerelease()
	if pre == "" {
		return append(key, 0x02) // a release, above its prereleases
	}
	key = append(key, 0x01)
	for _, part := range strings.Split(pre, ".") {
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			key = appendInt(append(key, 0x01), n)
		} else {
			key = appendText(append(key, 0x02), part)
		}
	}
	return append(key, 0x00)
}

// appendInt appends n as 8 bytes that order as n does.
func appendInt(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(n)^(1<<63))
}

// appendText appends s with 0x00 and 0x01 escaped as 0x01 0x01 and 0x01
// 0x02, which keeps the order of texts, then the terminator 0x00, below
// every escaped byte, so that a text sorts before its extensions.
func appendText(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0x00, 0x01:
			b = append(b, 0x01, c+1)
		default:
			b = append(b, c)
		}
	}
	return append(b, 0x00)
}
