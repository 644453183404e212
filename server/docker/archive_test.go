package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// TestSaveImages checks docker save: the named image is resolved as for
// inspect and saved by its digest, and the archive is the response.
func TestSaveImages(t *testing.T) {
	imgs := sampleImages()
	const archive = "archive bytes of the image"
	for _, tc := range []struct {
		name, path, wantID string
	}{
		{"names with a tag", "/v1.51/images/get?names=microsoft%2Fiis%3A1.0.0.0", imgs[2].Digest},
		{"names with a short version", "/images/get?names=nanoserver:10.0.10586", imgs[0].Digest},
		{"name in the path", "/images/windowsservercore:latest/get", imgs[1].Digest},
		{"short id in the path", "/v1.50/images/" + hex64('c')[:12] + "/get", imgs[2].Digest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withImages(&fakeBackend{}, imgs)
			var got api.SaveRequest
			f.saveFn = func(_ context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
				got = req
				for _, part := range []string{archive[:10], archive[10:]} {
					if _, err := io.WriteString(w, part); err != nil {
						return api.Image{}, err
					}
				}
				return imgs[0], nil
			}
			resp := newTestEnv(t, f).do(t, http.MethodGet, tc.path)
			if resp.status != http.StatusOK || string(resp.body) != archive {
				t.Fatalf("status %d, body %q", resp.status, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); ct != contentTypeTar {
				t.Fatalf("Content-Type %q", ct)
			}
			if got.ID != tc.wantID || got.Name != "" || got.Source != "" || got.Path != "" {
				t.Fatalf("save request %+v, want the id %s only", got, tc.wantID)
			}
		})
	}
}

// TestSaveImagesErrors checks the refusals before the first byte, with
// Docker's envelope, and that the backend is not asked for what cannot be
// saved.
func TestSaveImagesErrors(t *testing.T) {
	imgs := sampleImages()
	for _, tc := range []struct {
		name, path string
		saveErr    error
		status     int
		msg        string
		wantSave   bool
	}{
		{"several names", "/images/get?names=nanoserver&names=microsoft/iis", nil, http.StatusNotImplemented, "saving 2 images into one archive is not supported by providerd", false},
		{"no names", "/images/get", nil, http.StatusBadRequest, "no image to save", false},
		{"unknown image", "/images/get?names=nothere:1.0", nil, http.StatusNotFound, "No such image: nothere:1.0", false},
		{"refused by the provider", "/images/get?names=microsoft/iis", fmt.Errorf("image microsoft/iis: its parent is not installed: %w", errdefs.ErrFailedPrecondition),
			errdefs.HTTPStatus(errdefs.ErrFailedPrecondition), "its parent is not installed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := withImages(&fakeBackend{}, imgs)
			saved := false
			f.saveFn = func(context.Context, api.SaveRequest, io.Writer) (api.Image, error) {
				saved = true
				return api.Image{}, tc.saveErr
			}
			newTestEnv(t, f).do(t, http.MethodGet, tc.path).wantError(t, tc.status, tc.msg)
			if saved != tc.wantSave {
				t.Fatalf("Save called %v, want %v", saved, tc.wantSave)
			}
		})
	}
}

// TestSaveImagesAbort checks that an error after the first byte cuts the
// connection: the client cannot read a whole body.
func TestSaveImagesAbort(t *testing.T) {
	f := withImages(&fakeBackend{}, sampleImages())
	f.saveFn = func(_ context.Context, _ api.SaveRequest, w io.Writer) (api.Image, error) {
		if _, err := w.Write(bytes.Repeat([]byte("x"), 1024)); err != nil {
			return api.Image{}, err
		}
		return api.Image{}, fmt.Errorf("blob sha256:%s: %w", hex64('d'), errdefs.ErrNotFound)
	}
	e := newTestEnv(t, f)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+"/images/get?names=nanoserver", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read %d bytes of a failed save without an error", len(body))
	}
	if len(body) > 1024 {
		t.Fatalf("read %d bytes, more than were written", len(body))
	}
}

// TestLoadImages checks docker load: the body goes to the provider, and
// the stream names the image the archive was saved for, the last one.
func TestLoadImages(t *testing.T) {
	imgs := sampleImages()
	const archive = "tar bytes"
	for _, tc := range []struct {
		name   string
		loaded []api.Image
		want   []string
	}{
		{"image with its parent", []api.Image{imgs[1], imgs[2]}, []string{"Loaded image: microsoft/iis:1.0.0.0\n"}},
		{"base image", []api.Image{imgs[0]}, []string{"Loaded image: nanoserver:10.0.10586.0\n"}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBackend{}
			var got []byte
			f.loadFn = func(_ context.Context, r io.Reader) (api.LoadResult, error) {
				var err error
				got, err = io.ReadAll(r)
				return api.LoadResult{Images: tc.loaded}, err
			}
			e := newTestEnv(t, f)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/v1.51/images/load?quiet=1", strings.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", contentTypeTar)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if string(got) != archive {
				t.Fatalf("the provider read %q", got)
			}
			dec := json.NewDecoder(resp.Body)
			var lines []string
			for dec.More() {
				var m map[string]string
				if err := dec.Decode(&m); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, m["stream"])
			}
			if strings.Join(lines, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("stream %q, want %q", lines, tc.want)
			}
		})
	}
}

// TestLoadImagesErrors checks that a refused archive is Docker's
// envelope with the provider's status and message.
func TestLoadImagesErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		contentType string
		loadErr     error
		status      int
		msg         string
	}{
		{"bad archive", contentTypeTar, fmt.Errorf("install from archive: index.json: %w", errdefs.ErrInvalidArgument), http.StatusBadRequest, "index.json"},
		{"conflict", "", fmt.Errorf("image demoimage 1.0.0.0: installed with another digest: %w", errdefs.ErrConflict), http.StatusConflict, "another digest"},
		{"json body", "application/json", nil, http.StatusBadRequest, "wants a tar archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBackend{}
			f.loadFn = func(_ context.Context, r io.Reader) (api.LoadResult, error) {
				_, _ = io.Copy(io.Discard, r)
				return api.LoadResult{}, tc.loadErr
			}
			e := newTestEnv(t, f)
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/images/load", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			response{status: resp.StatusCode, header: resp.Header, body: body}.wantError(t, tc.status, tc.msg)
		})
	}
}
