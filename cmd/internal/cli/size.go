package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SizeVar defines a byte size flag: plain bytes, or a number with a unit
// (see ParseSize). The help shows its default with FormatSize.
func (f *FlagSet) SizeVar(p *int64, name string, value int64, usage string) {
	*p = value
	f.Var((*sizeValue)(p), name, "`size`: "+usage)
}

// sizeValue is the flag.Value of SizeVar.
type sizeValue int64

func (s *sizeValue) String() string { return FormatSize(int64(*s)) }

func (s *sizeValue) Set(v string) error {
	n, err := ParseSize(v)
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

// ParseSize reads a byte size: "1048576", "4MiB", "1GiB", "512KiB", "10MB"
// (units are case-insensitive; KiB/MiB/GiB/TiB are powers of 1024,
// KB/MB/GB/TB powers of 1000). It must be a whole number of bytes >= 0
// that fits an int64.
func ParseSize(s string) (int64, error) {
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

// FormatSize writes n with the largest binary unit that divides it, so that
// ParseSize reads it back: 64GiB, 1536KiB, 1000.
func FormatSize(n int64) string {
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

// HumanSize writes n for people: bytes below 1 KiB ("1023 B"), else the
// largest binary unit below it, with one decimal ("1.5 MiB").
func HumanSize(n int64) string {
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
