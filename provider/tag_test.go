package provider

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// imageRefs is the Refs that Images lists for the image named name.
func imageRefs(t *testing.T, p *Provider, name string) []string {
	t.Helper()
	imgs, err := p.Images(context.Background(), GetOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 {
		t.Fatalf("images named %s: %q", name, imageNames(imgs))
	}
	return imgs[0].Refs
}

func TestTagAndUntag(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	e.mustInstall(nano10586())

	if err := e.p.Tag(ctx, "windowsservercore:latest", "base/wsc", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Tag(ctx, "WindowsServerCore", "mine", "latest"); err != nil {
		t.Fatal(err)
	}
	want := []string{"base/wsc:v1", "mine:latest", "windowsservercore:10.0.14393.0", "windowsservercore:latest"}
	if got := imageRefs(t, e.p, "WindowsServerCore"); !slices.Equal(got, want) {
		t.Fatalf("refs %q, want %q", got, want)
	}
	// The new ref names the image, and its config can be read through it.
	cfg, err := e.p.ImageConfig(ctx, "base/wsc:v1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "windows" || len(cfg.RootFS.DiffIDs) == 0 {
		t.Fatalf("config %+v", cfg)
	}

	// An extra ref moves, as with docker; tagging again changes nothing.
	if err := e.p.Tag(ctx, "nanoserver:10.0.10586.0", "base/wsc", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Tag(ctx, "nanoserver:10.0.10586.0", "base/wsc", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := imageRefs(t, e.p, "NanoServer"); !slices.Contains(got, "base/wsc:v1") {
		t.Fatalf("moved ref not on NanoServer: %q", got)
	}
	if got := imageRefs(t, e.p, "WindowsServerCore"); slices.Contains(got, "base/wsc:v1") {
		t.Fatalf("moved ref still on WindowsServerCore: %q", got)
	}

	for _, tc := range []struct {
		name, image, repo, tag string
		want                   error
	}{
		{"bad repository", "NanoServer", "Bad Repo", "x", errdefs.ErrInvalidArgument},
		{"bad tag", "NanoServer", "nano", "-x", errdefs.ErrInvalidArgument},
		{"unknown image", "nothing", "nano", "x", errdefs.ErrNotFound},
		{"version ref of another image", "NanoServer", "windowsservercore", "10.0.14393.0", errdefs.ErrConflict},
		{"latest of installed images", "NanoServer", "microsoft/iis", "latest", errdefs.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustClass(t, e.p.Tag(ctx, tc.image, tc.repo, tc.tag), tc.want)
		})
	}

	// Untag of an extra ref leaves the image.
	removed, err := e.p.Untag(ctx, "mine", "latest")
	if err != nil || removed {
		t.Fatalf("untag mine:latest: %v, removed %v", err, removed)
	}
	if got := imageRefs(t, e.p, "WindowsServerCore"); slices.Contains(got, "mine:latest") {
		t.Fatalf("refs after untag %q", got)
	}
	_, err = e.p.Untag(ctx, "mine", "latest")
	mustClass(t, err, errdefs.ErrNotFound)

	// The image's own ref while an extra one remains: untag that first.
	_, err = e.p.Untag(ctx, "nanoserver", "10.0.10586.0")
	mustClass(t, err, errdefs.ErrFailedPrecondition)
	// The last refs of an image with a child: Remove's rules refuse.
	_, err = e.p.Untag(ctx, "windowsservercore", "latest")
	var de *DependentsError
	if !errors.As(err, &de) {
		t.Fatalf("untag of a parent: %v, want a *DependentsError", err)
	}
	if _, err := e.p.Untag(ctx, "base/wsc", "v1"); err != nil {
		t.Fatal(err)
	}
	// Now the image's own ref is its last name: the image goes.
	removed, err = e.p.Untag(ctx, "nanoserver", "10.0.10586.0")
	if err != nil || !removed {
		t.Fatalf("untag of the last ref: %v, removed %v", err, removed)
	}
	imgs, _ := e.p.Images(ctx, GetOptions{})
	if got := imageNames(imgs); !slices.Equal(got, []string{"microsoft/iis 1.0.0.0", "WindowsServerCore 10.0.14393.0"}) {
		t.Fatalf("images %q", got)
	}
}

// TestTagSurvivesRemovalInItsRepository checks that a latest ref added to a
// repository without installed images stays when another ref of that
// repository goes with its image.
func TestTagSurvivesRemovalInItsRepository(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	e.mustInstall(nano10586())
	if err := e.p.Tag(ctx, "WindowsServerCore", "mine", "latest"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Tag(ctx, "NanoServer", "mine", "nano"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"}); err != nil {
		t.Fatal(err)
	}
	if got := imageRefs(t, e.p, "WindowsServerCore"); !slices.Contains(got, "mine:latest") {
		t.Fatalf("mine:latest lost: %q", got)
	}
	if _, err := e.p.ImageConfig(ctx, "nothing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("config of nothing: %v", err)
	}
}

// TestUntagRemovalRechecksRefs: an untag that removes the image checks the
// refs again in the transaction that deletes it, so a Tag that lands
// between Untag's check and the removal keeps the image.
func TestUntagRemovalRechecksRefs(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	imgs, err := e.p.Images(ctx, GetOptions{Name: "NanoServer"})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("images: %v, %v", imgs, err)
	}
	id := imgs[0].Digest
	guard := func(r imageRecord, refs []string) error { return noExtraRefs("nanoserver:10.0.10586.0", r, refs) }

	// The Tag that a concurrent client makes after Untag's check.
	if err := e.p.Tag(ctx, "nanoserver:10.0.10586.0", "mine", "x"); err != nil {
		t.Fatal(err)
	}
	_, err = e.p.remove(ctx, RemoveOptions{ID: id}, guard)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("removal with an extra ref: %v, want FailedPrecondition", err)
	}
	if got := imageRefs(t, e.p, "NanoServer"); !slices.Contains(got, "mine:x") {
		t.Fatalf("refs after the refused removal: %q", got)
	}

	// Without the extra ref the same removal goes through.
	if _, err := e.p.Untag(ctx, "mine", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.remove(ctx, RemoveOptions{ID: id}, guard); err != nil {
		t.Fatal(err)
	}
	if imgs, err := e.p.Images(ctx, GetOptions{Name: "NanoServer"}); err != nil || len(imgs) != 0 {
		t.Fatalf("NanoServer still installed: %v, %v", imgs, err)
	}
}
