package catalog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/store/content"
)

// TestChunkedUpload pushes a blob in chunks with Content-Range, sends chunks
// out of order (416, offset unchanged), and finishes with a PUT that
// carries the last chunk.
func TestChunkedUpload(t *testing.T) {
	e := newTestEnv(t)
	blob := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	d := digest.FromBytes(blob)
	loc := e.startUpload("repo")
	id := path.Base(loc)

	r := e.do(http.MethodPatch, loc, bytes.NewReader(blob[:10]), withAuth(), withHeader("Content-Range", "0-9"),
		withHeader("Content-Type", "application/octet-stream")).
		wantStatus(t, http.StatusAccepted).
		wantHeader(t, "Range", "0-9").
		wantHeader(t, "Docker-Upload-UUID", id)
	loc = r.Header.Get("Location")

	for _, tc := range []struct{ name, rng string }{
		{"ahead of the offset", "20-29"},
		{"back to the start", "0-9"},
		{"overlapping the end", "5-14"},
	} {
		t.Run("out of order "+tc.name, func(t *testing.T) {
			var first, last int
			fmt.Sscanf(tc.rng, "%d-%d", &first, &last)
			e.do(http.MethodPatch, loc, bytes.NewReader(blob[first:last+1]), withAuth(), withHeader("Content-Range", tc.rng)).
				wantHeader(t, "Range", "0-9").
				wantHeader(t, "Location", loc).
				wantError(t, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
			e.do(http.MethodGet, loc, nil).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-9")
		})
	}
	t.Run("range that ends before it starts", func(t *testing.T) {
		e.do(http.MethodPatch, loc, bytes.NewReader(nil), withAuth(), withHeader("Content-Range", "10-5")).
			wantError(t, http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
	})
	t.Run("malformed Content-Range", func(t *testing.T) {
		e.do(http.MethodPatch, loc, bytes.NewReader(blob[10:20]), withAuth(), withHeader("Content-Range", "ten-twenty")).
			wantError(t, http.StatusBadRequest, CodeBlobUploadInvalid)
	})
	t.Run("Content-Length that disagrees with the range", func(t *testing.T) {
		e.do(http.MethodPatch, loc, bytes.NewReader(blob[10:15]), withAuth(), withHeader("Content-Range", "10-19")).
			wantError(t, http.StatusBadRequest, CodeSizeInvalid)
	})
	e.do(http.MethodGet, loc, nil).wantStatus(t, http.StatusNoContent).wantHeader(t, "Range", "0-9")

	r = e.do(http.MethodPatch, loc, bytes.NewReader(blob[10:20]), withAuth(), withHeader("Content-Range", "10-19")).
		wantStatus(t, http.StatusAccepted).
		wantHeader(t, "Range", "0-19")
	loc = r.Header.Get("Location")

	// The last chunk rides on the PUT, with its Content-Range.
	e.do(http.MethodPut, withDigest(loc, d), bytes.NewReader(blob[20:]), withAuth(),
		withHeader("Content-Range", fmt.Sprintf("20-%d", len(blob)-1))).
		wantStatus(t, http.StatusCreated).
		wantHeader(t, "Location", "/v2/repo/blobs/"+d.String()).
		wantHeader(t, "Docker-Content-Digest", d.String())
	got := e.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil).wantStatus(t, http.StatusOK)
	if !bytes.Equal(got.body, blob) {
		t.Fatalf("blob %q, want %q", got.body, blob)
	}
	// The session is over.
	e.do(http.MethodGet, loc, nil).wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
}

// TestStreamedUpload sends one PATCH whose body has no length and arrives
// over time, and checks that the registry receives it while it streams,
// instead of the server buffering the whole body first.
func TestStreamedUpload(t *testing.T) {
	e := newTestEnv(t)
	const part = 1 << 20
	blob := bytes.Repeat([]byte("streamed"), 3*part/8)
	d := digest.FromBytes(blob)
	loc := e.startUpload("repo")
	id := path.Base(loc)

	pr, pw := io.Pipe()
	done := make(chan response, 1)
	go func() {
		done <- e.do(http.MethodPatch, loc, pr, withAuth(), withUnknownLength())
	}()
	if _, err := pw.Write(blob[:2*part]); err != nil {
		t.Fatal(err)
	}
	// The first bytes must reach the upload while the request is still
	// open: poll its offset, for at most a minute.
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := e.reg.GetUpload(context.Background(), "repo", id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Offset >= part {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload has %d bytes while the client has sent %d: the body is not streamed", st.Offset, 2*part)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := pw.Write(blob[2*part:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	r.wantStatus(t, http.StatusAccepted).wantHeader(t, "Range", fmt.Sprintf("0-%d", len(blob)-1))

	e.do(http.MethodPut, withDigest(r.Header.Get("Location"), d), nil, withAuth()).wantStatus(t, http.StatusCreated)
	if !e.hasBlob("repo", d) {
		t.Fatal("streamed blob missing")
	}
}

// TestUploadWrongDigest checks that an upload whose digest does not match
// gets 400 DIGEST_INVALID and leaves no blob behind, monolithic or not.
func TestUploadWrongDigest(t *testing.T) {
	e := newTestEnv(t)
	blob := []byte("the real content")
	real := digest.FromBytes(blob)
	claimed := digest.FromString("something else")

	t.Run("monolithic", func(t *testing.T) {
		e.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+claimed.String(), bytes.NewReader(blob), withAuth()).
			wantError(t, http.StatusBadRequest, CodeDigestInvalid)
	})
	t.Run("session", func(t *testing.T) {
		loc := e.startUpload("repo")
		r := e.do(http.MethodPatch, loc, bytes.NewReader(blob), withAuth()).wantStatus(t, http.StatusAccepted)
		loc = r.Header.Get("Location")
		e.do(http.MethodPut, withDigest(loc, claimed), nil, withAuth()).wantError(t, http.StatusBadRequest, CodeDigestInvalid)
		// The upload is discarded.
		e.do(http.MethodGet, loc, nil).wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
	})
	t.Run("PUT without a digest", func(t *testing.T) {
		loc := e.startUpload("repo")
		e.do(http.MethodPut, loc, bytes.NewReader(blob), withAuth()).wantError(t, http.StatusBadRequest, CodeDigestInvalid)
	})
	for _, d := range []digest.Digest{real, claimed} {
		if e.hasBlob("repo", d) {
			t.Fatalf("blob %s exists after a digest mismatch", d)
		}
	}
	if infos := walkContent(t, e); len(infos) != 0 {
		t.Fatalf("content store holds %v after digest mismatches", infos)
	}
}

// walkContent lists the committed blobs of the content store.
func walkContent(t *testing.T, e *testEnv) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := e.cs.Walk(context.Background(), func(i content.Info) error {
		out = append(out, i.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUploadSessions(t *testing.T) {
	e := newTestEnv(t)
	t.Run("status of a fresh upload", func(t *testing.T) {
		loc := e.startUpload("repo")
		e.do(http.MethodGet, loc, nil).
			wantStatus(t, http.StatusNoContent).
			wantHeader(t, "Range", "0-0").
			wantHeader(t, "Location", loc).
			wantHeader(t, "Docker-Upload-UUID", path.Base(loc))
	})
	t.Run("cancel", func(t *testing.T) {
		loc := e.startUpload("repo")
		e.do(http.MethodPatch, loc, strings.NewReader("some bytes"), withAuth()).wantStatus(t, http.StatusAccepted)
		e.do(http.MethodDelete, loc, nil, withAuth()).wantStatus(t, http.StatusNoContent)
		e.do(http.MethodGet, loc, nil).wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
		e.do(http.MethodDelete, loc, nil, withAuth()).wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
	})
	t.Run("unknown upload", func(t *testing.T) {
		e.do(http.MethodGet, "/v2/repo/blobs/uploads/0123456789abcdef0123456789abcdef", nil).
			wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
		e.do(http.MethodPatch, "/v2/repo/blobs/uploads/not..an..id", strings.NewReader("x"), withAuth()).
			wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
	})
	t.Run("upload of another repository", func(t *testing.T) {
		loc := e.startUpload("repo")
		other := strings.Replace(loc, "/v2/repo/", "/v2/other/", 1)
		e.do(http.MethodPatch, other, strings.NewReader("x"), withAuth()).wantError(t, http.StatusNotFound, CodeBlobUploadUnknown)
	})
	t.Run("empty blob", func(t *testing.T) {
		loc := e.startUpload("repo")
		empty := digest.FromBytes(nil)
		e.do(http.MethodPut, withDigest(loc, empty), nil, withAuth()).wantStatus(t, http.StatusCreated)
		if !e.hasBlob("repo", empty) {
			t.Fatal("empty blob missing")
		}
	})
}

// TestMount checks cross-repository mounts: from a named repository, from
// any repository, and the fallback to an upload session when there is
// nothing to mount.
func TestMount(t *testing.T) {
	e := newTestEnv(t)
	blob := []byte("a shared base layer")
	d := e.pushBlob("windowsservercore", blob)

	e.do(http.MethodPost, "/v2/microsoft/iis/blobs/uploads/?mount="+d.String()+"&from=windowsservercore", nil, withAuth()).
		wantStatus(t, http.StatusCreated).
		wantHeader(t, "Location", "/v2/microsoft/iis/blobs/"+d.String()).
		wantHeader(t, "Docker-Content-Digest", d.String())
	got := e.do(http.MethodGet, "/v2/microsoft/iis/blobs/"+d.String(), nil).wantStatus(t, http.StatusOK)
	if !bytes.Equal(got.body, blob) {
		t.Fatal("mounted blob differs")
	}

	// Anonymous mount: no from.
	e.do(http.MethodPost, "/v2/microsoft/nginx/blobs/uploads/?mount="+d.String(), nil, withAuth()).
		wantStatus(t, http.StatusCreated)

	// Nothing to mount: an upload session instead.
	missing := digest.FromString("not pushed anywhere")
	r := e.do(http.MethodPost, "/v2/microsoft/iis/blobs/uploads/?mount="+missing.String()+"&from=windowsservercore", nil, withAuth()).
		wantStatus(t, http.StatusAccepted)
	if !strings.HasPrefix(r.Header.Get("Location"), "/v2/microsoft/iis/blobs/uploads/") {
		t.Fatalf("fallback Location %q", r.Header.Get("Location"))
	}
	if e.hasBlob("microsoft/iis", missing) {
		t.Fatal("a missing blob was mounted")
	}
	// A bad from is a bad request.
	e.do(http.MethodPost, "/v2/microsoft/iis/blobs/uploads/?mount="+d.String()+"&from=Bad..Name", nil, withAuth()).
		wantError(t, http.StatusBadRequest, CodeNameInvalid)
}
