package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/provider"
)

func manyImages(n int) []api.Image {
	imgs := make([]api.Image, n)
	for i := range imgs {
		imgs[i] = api.Image{Name: fmt.Sprintf("Img%05d", i), Version: "1.0", Publisher: "CN=A <b&c>",
			Digest: fmt.Sprintf("sha256:%064x", i), ID: fmt.Sprintf("%064x", i), Installed: time.Unix(1700000000, 0).UTC(),
			Refs: []string{fmt.Sprintf("img%05d:1.0", i)}}
	}
	return imgs
}

// TestListingStreamsTheView: GET /v1/images with no option is read from
// ImagesPage, page by page, and is byte for byte what writeJSON writes of
// the whole listing; the backend's Images is not called.
func TestListingStreamsTheView(t *testing.T) {
	defer func(n int) { imagesPage = n }(imagesPage)
	imagesPage = 7
	for _, n := range []int{0, 1, 7, 8, 2500} {
		t.Run(fmt.Sprint(n, " images"), func(t *testing.T) {
			imgs := manyImages(n)
			fake := &fakeBackend{images: func(context.Context, provider.GetOptions) ([]api.Image, error) { return imgs, nil }}
			e := newTestEnv(t, fake)
			for _, q := range []string{"", "?allVersions=true", "?name=&publisher="} {
				r := e.do(t, http.MethodGet, "/v1/images"+q, nil).want(t, http.StatusOK)
				want, err := marshal(api.ImagesResponse{Images: nonNil(imgs)})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(r.body, want) {
					t.Fatalf("GET /v1/images%s: %d bytes\n%.300s\nwant %d bytes\n%.300s", q, len(r.body), r.body, len(want), want)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
			}
			for _, c := range fake.called() {
				if c == "Images" {
					t.Fatal("the listing of every image called Images, not ImagesPage")
				}
			}
		})
	}
}

// TestListingErrors: an error before the first page is an error envelope;
// one after it cuts the response short, which the client cannot take for a
// complete listing.
func TestListingErrors(t *testing.T) {
	defer func(n int) { imagesPage = n }(imagesPage)
	imagesPage = 10
	imgs := manyImages(25)
	calls := 0
	fake := &fakeBackend{images: func(context.Context, provider.GetOptions) ([]api.Image, error) {
		calls++
		if calls == 1 || calls == 3 {
			return nil, errors.New("disk on fire")
		}
		return imgs, nil
	}}
	e := newTestEnv(t, fake)
	e.do(t, http.MethodGet, "/v1/images", nil).wantError(t, http.StatusInternalServerError, "Internal")

	resp, err := e.srv.Client().Get(e.srv.URL + "/v1/images")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a listing cut short after its first page read as complete: %d bytes, %.200s", len(body), body)
	}
}
