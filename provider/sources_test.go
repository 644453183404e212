package provider

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/store/meta"
)

// sourceRecord is the raw JSON record of the source name.
func sourceRecord(t *testing.T, p *Provider, name string) map[string]json.RawMessage {
	t.Helper()
	var rec map[string]json.RawMessage
	err := p.db.View(context.Background(), func(tx *bolt.Tx) error {
		v := meta.GetSourcesBucket(tx).Get([]byte(name))
		if v == nil {
			t.Fatalf("no record of source %s", name)
		}
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// listed is the source name of p.Sources.
func listed(t *testing.T, p *Provider, name string) api.Source {
	t.Helper()
	list, err := p.Sources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("Sources has no %s: %+v", name, list)
	return api.Source{}
}

// TestSourceTrusted: Trusted is kept with the source, across a restart,
// and returned by AddSource, Sources and RefreshSource; a source that is
// not trusted has no trusted key in its record.
func TestSourceTrusted(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withDownSources)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		trusted bool
	}{
		{name: "down-trusted", trusted: true},
		{name: "down-asks", trusted: false},
	} {
		added, err := e.p.AddSource(ctx, api.Source{Name: tc.name, Location: "http://127.0.0.1:1", Trusted: tc.trusted})
		if err != nil {
			t.Fatal(err)
		}
		if added.Trusted != tc.trusted {
			t.Errorf("AddSource %s: trusted %v, want %v", tc.name, added.Trusted, tc.trusted)
		}
		raw, ok := sourceRecord(t, e.p, tc.name)["trusted"]
		if tc.trusted && (!ok || string(raw) != "true") {
			t.Errorf("the record of %s: trusted %s, want true", tc.name, raw)
		}
		if !tc.trusted && ok {
			t.Errorf("the record of %s: trusted %s, want no such key", tc.name, raw)
		}
	}

	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	e.p = e.open(withDownSources)
	for _, tc := range []struct {
		name    string
		trusted bool
	}{
		{name: "down-trusted", trusted: true},
		{name: "down-asks", trusted: false},
		{name: "catalog", trusted: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listed(t, e.p, tc.name); got.Trusted != tc.trusted {
				t.Errorf("Sources: trusted %v, want %v", got.Trusted, tc.trusted)
			}
			got, err := e.p.RefreshSource(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Trusted != tc.trusted || got.Status == nil {
				t.Errorf("RefreshSource: trusted %v, status %+v; want trusted %v and a status", got.Trusted, got.Status, tc.trusted)
			}
		})
	}
}

// TestSourceRecordWithoutTrusted: a record written before sources had
// Trusted reads as a source that is not trusted, its other settings kept.
func TestSourceRecordWithoutTrusted(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withDownSources)
	ctx := context.Background()
	old := `{"name":"down-old","location":"https://registry.example","insecure":true,"username":"me","password":"s3cret","signatures":"off"}`
	if err := e.p.db.Update(ctx, func(tx *bolt.Tx) error {
		return meta.GetSourcesBucket(tx).Put([]byte("down-old"), []byte(old))
	}); err != nil {
		t.Fatal(err)
	}
	s, err := e.p.sourceSetting(ctx, "down-old")
	if err != nil {
		t.Fatal(err)
	}
	want := api.Source{Name: "down-old", Location: "https://registry.example", Insecure: true, Username: "me", Password: "s3cret", Signatures: api.SignaturesOff}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("the old record reads as %+v, want %+v", s, want)
	}
	if got := listed(t, e.p, "down-old"); got.Trusted || got.Password != "" {
		t.Fatalf("Sources gives the old record as %+v", got)
	}
}
