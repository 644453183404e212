package catalog

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestValidateRangeAgreesWithServeContent checks validateRange against what
// http.ServeContent does with the same Range: an error exactly when
// ServeContent answers 416.
func TestValidateRangeAgreesWithServeContent(t *testing.T) {
	for _, size := range []int64{0, 1, 1000} {
		for _, spec := range []string{
			"bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=500-1499", "bytes=500-", "bytes=-500",
			"bytes=2000-5000", "bytes=500-0", "bytes=5000-10000", "bytes=1000-", "bytes=999-999",
			"bytes=0-1,5-6", "bytes=5000-6000,0-1", "bytes=5000-6000,7000-", "bytes=", "bytes=,",
			"bytes=a-b", "bytes=1-a", "bytes=--1", "bytes=-", "items=0-1", "bytes 0-1", "0-1",
			"bytes= 1 - 2 ", "bytes=-1000000000000000000000",
		} {
			content := bytes.NewReader(make([]byte, size))
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Range", spec)
			http.ServeContent(rec, req, "", time.Time{}, content)
			serve416 := rec.Code == http.StatusRequestedRangeNotSatisfiable
			err := validateRange(spec, size)
			if (err != nil) != serve416 {
				t.Errorf("size %d, Range %q: validateRange %v, ServeContent status %d", size, spec, err, rec.Code)
			}
		}
	}
}
