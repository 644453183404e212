package catalog

import (
	"errors"
	"strconv"
	"strings"
)

var (
	errRangeMalformed = errors.New("malformed range")
	errRangeNoOverlap = errors.New("no range overlaps the content")
)

// validateRange checks a Range header value against content of size bytes
// with the rules of net/http's ServeContent (RFC 9110 byte ranges): the
// unit must be "bytes"; each range is first-last, first- or -suffix, with
// first <= last; ranges that start at or after size are skipped, and if
// every range is skipped none overlaps. As in ServeContent, empty content
// ignores the Range and is served whole.
func validateRange(spec string, size int64) error {
	rest, ok := strings.CutPrefix(spec, "bytes=")
	if !ok {
		return errRangeMalformed
	}
	overlap, skipped := false, false
	for ra := range strings.SplitSeq(rest, ",") {
		ra = strings.TrimSpace(ra)
		if ra == "" {
			continue
		}
		first, last, ok := strings.Cut(ra, "-")
		if !ok {
			return errRangeMalformed
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first == "" {
			// A suffix: the last n bytes.
			if last == "" || last[0] == '-' {
				return errRangeMalformed
			}
			if n, err := strconv.ParseInt(last, 10, 64); err != nil || n < 0 {
				return errRangeMalformed
			}
			overlap = true
			continue
		}
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return errRangeMalformed
		}
		if start >= size {
			// Skipped before its end is read, as ServeContent does.
			skipped = true
			continue
		}
		if last != "" {
			end, err := strconv.ParseInt(last, 10, 64)
			if err != nil || start > end {
				return errRangeMalformed
			}
		}
		overlap = true
	}
	if skipped && !overlap && size > 0 {
		return errRangeNoOverlap
	}
	return nil
}
