package cli

import (
	"reflect"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

func TestParseMirror(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MirrorSpec
	}{
		{"http://cache:5000/", MirrorSpec{Mirror: api.SourceMirror{Location: "http://cache:5000"}}},
		{"https://m.example,insecure,username=ops,password-file=/run/pw,capabilities=pull",
			MirrorSpec{Mirror: api.SourceMirror{Location: "https://m.example", Insecure: true, Username: "ops", Capabilities: []string{"pull"}}, PasswordFile: "/run/pw"}},
		{"https://harbor.example,namespace=proxy-project", MirrorSpec{Mirror: api.SourceMirror{Location: "https://harbor.example", Namespace: "proxy-project"}}},
		{"https://m.example, capabilities=pull+resolve", MirrorSpec{Mirror: api.SourceMirror{Location: "https://m.example", Capabilities: []string{"pull", "resolve"}}}},
	} {
		got, err := ParseMirror(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMirror(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "cache:5000", "ftp://m", "https://u:p@m.example", "http://m,username=u", "http://m,password-file=f",
		"http://m,capabilities=push", "http://m,namespace=", "http://m,capabilities=", "http://m,insecure,insecure", "http://m,insecure=yes", "http://m,tls",
	} {
		if _, err := ParseMirror(in); !IsUsage(err) {
			t.Errorf("ParseMirror(%q): %v, want a usage error", in, err)
		}
	}
	m := api.SourceMirror{Location: "https://m.example", Insecure: true, Username: "ops", Password: "secret", Capabilities: []string{"pull"}}
	if got := MirrorString(m); got != "https://m.example,insecure,username=ops,capabilities=pull" {
		t.Errorf("MirrorString = %q", got)
	}
}
