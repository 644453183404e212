package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{name: "simple", input: "nanoserver", ok: true},
		{name: "with namespace", input: "microsoft/iis", ok: true},
		{name: "separators", input: "a.b_c__d-e---f/g9", ok: true},
		{name: "longest", input: strings.Repeat("a", MaxNameLength), ok: true},
		{name: "too long", input: strings.Repeat("a", MaxNameLength+1)},
		{name: "empty", input: ""},
		{name: "upper case", input: "NanoServer"},
		{name: "leading separator", input: "-nano"},
		{name: "trailing slash", input: "nano/"},
		{name: "double slash", input: "a//b"},
		{name: "triple underscore", input: "a___b"},
		{name: "domain with port", input: "localhost:5000/nano"},
		{name: "dot dot", input: "a/../b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.input)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			if !errors.Is(err, ErrNameInvalid) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ValidateName(%q) = %v, want ErrNameInvalid", tt.input, err)
			}
		})
	}
}

func TestValidateTag(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
	}{
		{name: "version", input: "10.0.14393.0", ok: true},
		{name: "latest", input: "latest", ok: true},
		{name: "leading underscore", input: "_x", ok: true},
		{name: "mixed case", input: "Tag-1_a.b", ok: true},
		{name: "128 characters", input: strings.Repeat("a", 128), ok: true},
		{name: "129 characters", input: strings.Repeat("a", 129)},
		{name: "empty", input: ""},
		{name: "leading dot", input: ".x"},
		{name: "leading dash", input: "-x"},
		{name: "colon", input: "a:b"},
		{name: "slash", input: "a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTag(tt.input)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateTag(%q) = %v, want nil", tt.input, err)
				}
				return
			}
			if !errors.Is(err, ErrTagInvalid) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ValidateTag(%q) = %v, want ErrTagInvalid", tt.input, err)
			}
		})
	}
}

func TestParseDigestAndReference(t *testing.T) {
	sha256 := digest.SHA256.FromString("x")
	sha512 := digest.SHA512.FromString("x")
	tests := []struct {
		name    string
		ref     string
		wantTag string
		wantDig digest.Digest
		wantErr error
	}{
		{name: "tag", ref: "10.0.10586.0", wantTag: "10.0.10586.0"},
		{name: "sha256", ref: sha256.String(), wantDig: sha256},
		{name: "sha512", ref: sha512.String(), wantDig: sha512},
		{name: "sha384 unsupported", ref: digest.SHA384.FromString("x").String(), wantErr: ErrDigestInvalid},
		{name: "bad hex", ref: "sha256:baddigeststring", wantErr: ErrDigestInvalid},
		{name: "short", ref: "sha256:abcd", wantErr: ErrDigestInvalid},
		{name: "upper case hex", ref: "sha256:" + strings.ToUpper(sha256.Encoded()), wantErr: ErrDigestInvalid},
		{name: "unknown algorithm", ref: "md5:d41d8cd98f00b204e9800998ecf8427e", wantErr: ErrDigestInvalid},
		{name: "invalid tag", ref: "-x", wantErr: ErrTagInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag, dig, err := ParseReference(tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ParseReference(%q) error = %v, want %v", tt.ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReference(%q): %v", tt.ref, err)
			}
			if tag != tt.wantTag || dig != tt.wantDig {
				t.Fatalf("ParseReference(%q) = %q, %q; want %q, %q", tt.ref, tag, dig, tt.wantTag, tt.wantDig)
			}
		})
	}
}

func TestErrorsCarryAClass(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		class error
	}{
		{name: "blob unknown", err: ErrBlobUnknown, class: errdefs.ErrNotFound},
		{name: "blob upload invalid", err: ErrBlobUploadInvalid, class: errdefs.ErrInvalidArgument},
		{name: "blob upload unknown", err: ErrBlobUploadUnknown, class: errdefs.ErrNotFound},
		{name: "digest invalid", err: ErrDigestInvalid, class: errdefs.ErrInvalidArgument},
		{name: "digest mismatch", err: ErrDigestMismatch, class: errdefs.ErrFailedPrecondition},
		{name: "manifest blob unknown", err: ErrManifestBlobUnknown, class: errdefs.ErrInvalidArgument},
		{name: "manifest invalid", err: ErrManifestInvalid, class: errdefs.ErrInvalidArgument},
		{name: "manifest unknown", err: ErrManifestUnknown, class: errdefs.ErrNotFound},
		{name: "name invalid", err: ErrNameInvalid, class: errdefs.ErrInvalidArgument},
		{name: "name unknown", err: ErrNameUnknown, class: errdefs.ErrNotFound},
		{name: "size invalid", err: ErrSizeInvalid, class: errdefs.ErrFailedPrecondition},
		{name: "tag invalid", err: ErrTagInvalid, class: errdefs.ErrInvalidArgument},
		{name: "range invalid", err: ErrRangeInvalid, class: errdefs.ErrOutOfRange},
		{name: "manifest too large", err: ErrManifestTooLarge, class: errdefs.ErrTooLarge},
		{name: "unsupported", err: ErrUnsupported, class: errdefs.ErrNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.class) {
				t.Errorf("%v is not of class %v", tt.err, tt.class)
			}
		})
	}
}
