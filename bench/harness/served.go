package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"time"
)

// Served is what catalogd's log says it served over a stretch of time:
// the blobs it answered a GET of with their bytes (200, or 206 for a
// range), and every request.
type Served struct {
	Requests  int
	BlobGets  int
	BlobBytes int64
}

// blobPath matches the path of a blob of the distribution API.
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)

// logLine is the part of one of catalogd's request lines (--log-format
// json, server/middleware.Logging) that Served needs.
type logLine struct {
	Msg       string `json:"msg"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Status    int    `json:"status"`
	Bytes     int64  `json:"bytes"`
	RequestID string `json:"request_id"`
}

// ServedSince reads catalogd's log at path (written with --log-format
// json) from the byte offset from, and returns what it served in the
// request lines there and the offset where the reading stopped: the end
// of its last whole line. Lines that are no request lines are skipped.
// A request's line is written when its handler returns: call SettleLog
// first so that every request answered so far is in.
func ServedSince(path string, from int64) (Served, int64, error) {
	var s Served
	f, err := os.Open(path)
	if err != nil {
		return s, from, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return s, from, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	end := from
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return s, end, nil // a partial last line is left for the next read
		}
		if err != nil {
			return s, end, err
		}
		end += int64(len(line))
		var l logLine
		if json.Unmarshal(line, &l) != nil || l.Msg != "request" {
			continue
		}
		s.Requests++
		if l.Method == http.MethodGet && (l.Status == http.StatusOK || l.Status == http.StatusPartialContent) && blobPath.MatchString(l.Path) {
			s.BlobGets++
			s.BlobBytes += l.Bytes
		}
	}
}

// SettleLog waits, up to timeout, until catalogd at base (http://host:port)
// has logged every request it answered before the call: it sends a GET
// of /v2/ with an X-Request-Id of its own, waits for that request's line
// in the log at path (read from the offset from), then gives the handlers
// that answered before it 100 ms more. It returns the offset of the end
// of the log's last whole line.
func SettleLog(base, path string, from int64, timeout time.Duration) (int64, error) {
	id := fmt.Sprintf("bench-log-mark-%d", time.Now().UnixNano())
	req, err := http.NewRequest(http.MethodGet, base+"/v2/", nil)
	if err != nil {
		return from, err
	}
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return from, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(timeout)
	for {
		found, err := logHasRequest(path, from, id)
		if err != nil {
			return from, err
		}
		if found {
			time.Sleep(100 * time.Millisecond)
			_, end, err := ServedSince(path, from)
			return end, err
		}
		if time.Now().After(deadline) {
			return from, fmt.Errorf("catalogd did not log the request %s within %s", id, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logHasRequest reports whether the log at path has, past the offset
// from, the line of the request whose id is id.
func logHasRequest(path string, from int64, id string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.RequestID == id {
			return true, nil
		}
	}
	return false, sc.Err()
}
