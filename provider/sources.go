package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/store/meta"
)

var sourceNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validateSource checks a source's settings before the factory sees them.
func validateSource(s api.Source) error {
	if !sourceNameRE.MatchString(s.Name) {
		return fmt.Errorf("source name %q: want 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-': %w",
			s.Name, errdefs.ErrInvalidArgument)
	}
	if !httpURL(s.Location) {
		return fmt.Errorf("source %s: location %q: want an http or https URL: %w",
			s.Name, s.Location, errdefs.ErrInvalidArgument)
	}
	if len(s.Mirrors) > maxMirrors {
		return fmt.Errorf("source %s: %d mirrors, more than %d: %w", s.Name, len(s.Mirrors), maxMirrors, errdefs.ErrInvalidArgument)
	}
	seen := map[string]bool{strings.TrimSuffix(s.Location, "/"): true}
	for _, m := range s.Mirrors {
		if !httpURL(m.Location) {
			return fmt.Errorf("source %s: mirror %q: want an http or https URL: %w", s.Name, m.Location, errdefs.ErrInvalidArgument)
		}
		loc := strings.TrimSuffix(m.Location, "/")
		if seen[loc] {
			return fmt.Errorf("source %s: mirror %s given twice, or the source's own location: %w", s.Name, m.Location, errdefs.ErrInvalidArgument)
		}
		seen[loc] = true
		for _, c := range m.Capabilities {
			if c != api.MirrorPull && c != api.MirrorResolve {
				return fmt.Errorf("source %s: mirror %s: capability %q: want %s or %s: %w",
					s.Name, m.Location, c, api.MirrorPull, api.MirrorResolve, errdefs.ErrInvalidArgument)
			}
		}
		if m.Namespace != "" {
			if err := model.ValidateName(m.Namespace); err != nil {
				return fmt.Errorf("source %s: mirror %s: namespace %q: %v: %w", s.Name, m.Location, m.Namespace, err, errdefs.ErrInvalidArgument)
			}
			if m.Can(api.MirrorResolve) {
				// Its index would list the namespace's names, not the
				// source's.
				return fmt.Errorf("source %s: mirror %s: a mirror with a namespace can only pull: %w", s.Name, m.Location, errdefs.ErrInvalidArgument)
			}
		}
		if (m.Username == "") != (m.Password == "") {
			return fmt.Errorf("source %s: mirror %s: a username and a password go together: %w", s.Name, m.Location, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// httpURL reports whether s is an http or https URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// makeSource validates s and makes its client. A factory error of no class
// is a bad setting: InvalidArgument.
func (p *Provider) makeSource(s api.Source) (Source, error) {
	if err := validateSource(s); err != nil {
		return nil, err
	}
	made := func(s api.Source, what string) (Source, error) {
		src, err := p.newSource(s)
		if err != nil {
			if api.ErrorCode(err) == api.CodeInternal {
				return nil, fmt.Errorf("%s: %w: %w", what, err, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return src, nil
	}
	src, err := made(s, "source "+s.Name)
	if err != nil || len(s.Mirrors) == 0 {
		return src, err
	}
	mirrors := make([]*endpoint, 0, len(s.Mirrors))
	for _, m := range s.Mirrors {
		ms, err := made(mirrorSettings(s, m), "source "+s.Name+": mirror "+m.Location)
		if err != nil {
			return nil, err
		}
		mirrors = append(mirrors, &endpoint{location: m.Location, namespace: m.Namespace, src: ms,
			pull: m.Can(api.MirrorPull), resolve: m.Can(api.MirrorResolve)})
	}
	return newEndpointSource(src, mirrors, p.mirrorTimeout, p.log), nil
}

// addDefaultSources adds list when the database holds no source yet.
func (p *Provider) addDefaultSources(ctx context.Context, list []api.Source) error {
	if len(list) == 0 {
		return nil
	}
	empty := false
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		k, _ := meta.GetSourcesBucket(tx).Cursor().First()
		empty = k == nil
		return nil
	})
	if err != nil || !empty {
		return err
	}
	for _, s := range list {
		if _, err := p.AddSource(ctx, s); err != nil && !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("default source: %w", err)
		}
	}
	return nil
}

// Sources lists the sources, passwords left out, each with the state of
// its mirror.
func (p *Provider) Sources(ctx context.Context) ([]api.Source, error) {
	list, err := p.sourceSettings(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list {
		list[i] = list[i].WithoutPasswords()
		st, err := p.sourceStatus(ctx, list[i].Name)
		if err != nil {
			return nil, err
		}
		list[i].Status = &st
	}
	return list, nil
}

// sourceSetting reads the source name, password included; NotFound when
// there is none.
func (p *Provider) sourceSetting(ctx context.Context, name string) (api.Source, error) {
	var s api.Source
	found := false
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		v := meta.GetSourcesBucket(tx).Get([]byte(name))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		return api.Source{}, fmt.Errorf("source %q: %w", name, err)
	}
	if !found {
		return api.Source{}, fmt.Errorf("no such source %q: %w", name, errdefs.ErrNotFound)
	}
	return s, nil
}

// sourceSettings reads every source, passwords included, sorted by name.
func (p *Provider) sourceSettings(ctx context.Context) ([]api.Source, error) {
	out := []api.Source{}
	err := p.db.View(ctx, func(tx *bolt.Tx) error {
		return meta.GetSourcesBucket(tx).ForEach(func(k, v []byte) error {
			var s api.Source
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("source record %s: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// AddSource adds a source; AlreadyExists if the name is taken.
//
// The name must be 1 to 64 of [A-Za-z0-9._-] and the location an http or
// https URL; the source factory must accept the settings. Errors are
// InvalidArgument for bad settings. The returned source has no password.
func (p *Provider) AddSource(ctx context.Context, s api.Source) (api.Source, error) {
	s.Status = nil
	if err := normalizeTrust(&s); err != nil {
		return api.Source{}, err
	}
	src, err := p.makeSource(s)
	if err != nil {
		return api.Source{}, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return api.Source{}, fmt.Errorf("source %s: %w", s.Name, err)
	}
	err = func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		err := p.db.Update(ctx, func(tx *bolt.Tx) error {
			bkt := meta.GetSourcesBucket(tx)
			if bkt.Get([]byte(s.Name)) != nil {
				return fmt.Errorf("source %s: %w", s.Name, errdefs.ErrAlreadyExists)
			}
			// A mirror left by a source of that name removed earlier is
			// not this source's.
			if err := meta.DeleteMirrorBucket(tx, s.Name); err != nil {
				return err
			}
			return bkt.Put([]byte(s.Name), b)
		})
		if err == nil {
			p.sources[s.Name] = src
		}
		return err
	}()
	if err != nil {
		return api.Source{}, err
	}
	p.log.WithField("source", s.Name).WithField("location", s.Location).WithField("mirrors", len(s.Mirrors)).Info("source added")
	if _, err := p.syncer(ctx, s.Name); err != nil {
		p.log.WithField("source", s.Name).WithError(err).Warn("the source's mirror is not synced")
	}
	return s.WithoutPasswords(), nil
}

// RemoveSource removes a source and its mirror; NotFound if there is none
// by that name. Installed images keep the name of the source they came
// from.
func (p *Provider) RemoveSource(ctx context.Context, name string) error {
	p.stopSyncer(name)
	err := func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.db.Update(ctx, func(tx *bolt.Tx) error {
			bkt := meta.GetSourcesBucket(tx)
			if bkt.Get([]byte(name)) == nil {
				return fmt.Errorf("no such source %q: %w", name, errdefs.ErrNotFound)
			}
			if err := meta.DeleteMirrorBucket(tx, name); err != nil {
				return err
			}
			return bkt.Delete([]byte(name))
		})
	}()
	if err != nil {
		return err
	}
	// A Find between the stop and the delete may have started it again.
	if p.stopSyncer(name) {
		if err := p.db.Update(ctx, func(tx *bolt.Tx) error { return meta.DeleteMirrorBucket(tx, name) }); err != nil {
			return err
		}
	}
	p.mu.Lock()
	delete(p.sources, name)
	p.mu.Unlock()
	p.log.WithField("source", name).Info("source removed")
	return nil
}

// source returns the client of the source name, made once and then
// cached. NotFound when there is no such source.
func (p *Provider) source(ctx context.Context, name string) (Source, error) {
	p.mu.Lock()
	src, ok := p.sources[name]
	p.mu.Unlock()
	if ok {
		return src, nil
	}
	s, err := p.sourceSetting(ctx, name)
	if err != nil {
		return nil, err
	}
	if src, err = p.makeSource(s); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cached, ok := p.sources[name]; ok {
		return cached, nil
	}
	p.sources[name] = src
	return src, nil
}
