package catalog

import (
	"context"
	"testing"

	"github.com/containerprovider/containerprovider/catalog/find"
)

// TestFindSignatures: a cosign signature tag put in an image's repository
// sets the image's Signatures flag in the find index, and a change in the
// feed carries it; deleting the signature manifest clears it.
func TestFindSignatures(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	img := env.newImage(t, "app", "layer")
	img.manifest.Annotations = map[string]string{find.AnnotationTitle: "App", find.AnnotationVersion: "1.0.0.0"}
	img.marshal(t)
	env.putImage(t, "app", "1.0.0.0", img)
	signed := func() bool {
		t.Helper()
		es, err := env.Find(ctx, find.Options{Name: "App"})
		if err != nil || len(es) != 1 {
			t.Fatalf("Find: %v, %v", es, err)
		}
		return es[0].Signatures
	}
	if signed() {
		t.Fatal("an unsigned image is flagged")
	}
	before, err := env.Changes(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}

	// A signature manifest: a layer that is no image layer.
	sig := env.newImage(t, "app", `{"critical":{}}`)
	sig.manifest.Layers[0].MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	sig.marshal(t)
	tag := find.SignatureTag(img.digest.String())
	env.putImage(t, "app", tag, sig)
	if !signed() {
		t.Fatal("the signature tag did not flag the image")
	}
	after, err := env.Changes(ctx, before.Last, 100)
	if err != nil || len(after.Changes) != 1 || after.Changes[0].Entry == nil || !after.Changes[0].Entry.Signatures {
		t.Fatalf("the feed after the signature: %+v, %v", after, err)
	}
	env.checkInvariants(t)

	if err := env.DeleteManifest(ctx, "app", sig.digest.String()); err != nil {
		t.Fatal(err)
	}
	if signed() {
		t.Fatal("the image is still flagged without its signature manifest")
	}
	env.checkInvariants(t)
}
