package find

import (
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestNormalizeVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "one part", in: "1", want: "1.0.0.0"},
		{name: "two parts", in: "1.0", want: "1.0.0.0"},
		{name: "three parts", in: "10.0.14393", want: "10.0.14393.0"},
		{name: "four parts", in: "10.0.14393.0", want: "10.0.14393.0"},
		{name: "leading zeros", in: "01.002", want: "1.2.0.0"},
		{name: "spaces trimmed", in: " 1.0 ", want: "1.0.0.0"},
		{name: "largest part", in: "2147483647", want: "2147483647.0.0.0"},
		{name: "empty", in: "", wantErr: true},
		{name: "blank", in: "  ", wantErr: true},
		{name: "five parts", in: "1.2.3.4.5", wantErr: true},
		{name: "letters", in: "1.0a", wantErr: true},
		{name: "v prefix", in: "v1.0", wantErr: true},
		{name: "negative", in: "-1.0", wantErr: true},
		{name: "plus sign", in: "+1.0", wantErr: true},
		{name: "empty part", in: "1..0", wantErr: true},
		{name: "trailing dot", in: "1.", wantErr: true},
		{name: "prerelease", in: "1.0.0-beta", wantErr: true},
		{name: "part too large", in: "2147483648", wantErr: true},
		{name: "part overflows uint64", in: "99999999999999999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeVersion(tt.in)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("NormalizeVersion(%q) = %q, %v; want InvalidArgument", tt.in, got, err)
				}
				if !strings.Contains(err.Error(), "version") {
					t.Errorf("error %q does not name the field", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeVersion(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestNormalizePublisher(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "plain", in: "Demo", want: "CN=Demo"},
		{name: "already CN", in: "CN=Microsoft", want: "CN=Microsoft"},
		{name: "lower-case cn kept", in: "cn=Demo", want: "cn=Demo"},
		{name: "trimmed", in: "  Demo ", want: "CN=Demo"},
		{name: "with spaces inside", in: "Contoso Ltd", want: "CN=Contoso Ltd"},
		{name: "empty", in: "", wantErr: true},
		{name: "blank", in: "   ", wantErr: true},
		{name: "bare CN", in: "CN=", wantErr: true},
		{name: "bare CN with blank", in: "cn=  ", wantErr: true},
		{name: "control character", in: "De\nmo", wantErr: true},
		{name: "too long", in: strings.Repeat("x", MaxPublisherLength), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePublisher(tt.in)
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("NormalizePublisher(%q) = %q, %v; want InvalidArgument", tt.in, got, err)
				}
				if !strings.Contains(err.Error(), "publisher") {
					t.Errorf("error %q does not name the field", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizePublisher(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
