package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

var sourcesColumns = []column{
	{header: "Name", width: 16},
	{header: "Location", width: 32},
	{header: "State", width: 12},
	{header: "Entries", width: 9},
	{header: "LastSync", width: 22},
	{header: "Signatures", width: 12},
	{header: "LastError", max: 60},
}

// mirrorsColumn lists a source's mirrors, after its location, when a
// source has any.
var mirrorsColumn = column{header: "Mirrors", width: 12, max: 64}

// trustedColumn says whether PackageManagement installs from a source
// without asking; it comes before LastError when a source is trusted.
var trustedColumn = column{header: "Trusted", width: 9}

// formatSources is the table of source list: each source with the state
// of providerd's index of it (insecure and username are in --output json).
func formatSources(sources []api.Source) string {
	withMirrors, withTrusted := false, false
	for _, s := range sources {
		withMirrors = withMirrors || len(s.Mirrors) > 0
		withTrusted = withTrusted || s.Trusted
	}
	cols := slices.Clone(sourcesColumns)
	if withTrusted {
		cols = slices.Insert(cols, len(cols)-1, trustedColumn)
	}
	if withMirrors {
		cols = slices.Insert(cols, 2, mirrorsColumn)
	}
	rows := make([][]string, 0, len(sources))
	for _, s := range sources {
		state, entries, synced, lastErr := "", "", "", ""
		if st := s.Status; st != nil {
			state, entries, synced, lastErr = sourceState(*st), fmt.Sprint(st.Entries), "never", st.LastError
			if st.LastSync != nil {
				synced = st.LastSync.Local().Format("2006-01-02 15:04:05")
			}
		}
		mirrors := make([]string, 0, len(s.Mirrors))
		for _, m := range s.Mirrors {
			mirrors = append(mirrors, m.Location)
		}
		row := []string{s.Name, s.Location, state, entries, synced, signaturesText(s), lastErr}
		if withTrusted {
			row = slices.Insert(row, len(row)-1, boolText(s.Trusted))
		}
		if withMirrors {
			row = slices.Insert(row, 2, strings.Join(mirrors, " "))
		}
		rows = append(rows, row)
	}
	return formatTable(cols, rows)
}

// signaturesText is a source's signature policy, with its number of keys:
// "required (1 key)", "off".
func signaturesText(s api.Source) string {
	mode := s.Signatures
	if mode == "" {
		mode = api.SignaturesOff
	}
	switch n := len(s.TrustKeyIDs); {
	case n == 1:
		return mode + " (1 key)"
	case n > 1:
		return fmt.Sprintf("%s (%d keys)", mode, n)
	}
	return mode
}

// sourceState is one word for the state of a source's index: complete,
// stale (the last sync failed), syncing (its first sync is under way),
// incomplete (its first sync has not ended) or from-mirror (the location
// is unreachable and the index was read from a mirror).
func sourceState(st api.SourceStatus) string {
	switch {
	case st.Origin != "":
		return "from-mirror"
	case !st.Complete && st.Syncing:
		return "syncing"
	case !st.Complete:
		return "incomplete"
	case st.LastError != "":
		return "stale"
	}
	return "complete"
}

func setupSourceRefresh(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 1 {
			return cli.Usagef("source refresh takes at most one NAME, got %q", args)
		}
		var names []string
		if len(args) == 1 {
			names = args
		} else {
			sources, err := c.Sources(ctx)
			if err != nil {
				return err
			}
			for _, s := range sources {
				names = append(names, s.Name)
			}
		}
		var refreshed []api.Source
		var failed []string
		for _, name := range names {
			if g.output != outputJSON {
				fmt.Fprintf(a.stdout, "Refreshing source %s...\n", name)
			}
			s, err := c.RefreshSource(ctx, name)
			if err != nil {
				return err
			}
			refreshed = append(refreshed, s)
			if s.Status != nil && s.Status.LastError != "" {
				failed = append(failed, fmt.Sprintf("%s: %s", name, s.Status.LastError))
			}
		}
		if g.output == outputJSON {
			if err := writeJSON(a.stdout, api.SourcesResponse{Sources: nonNil(refreshed)}); err != nil {
				return err
			}
		} else if _, err := io.WriteString(a.stdout, formatSources(refreshed)); err != nil {
			return err
		}
		if len(failed) > 0 {
			return fmt.Errorf("the sync failed: %s: %w", strings.Join(failed, "; "), errdefs.ErrUnavailable)
		}
		return nil
	}
}

func setupSourceAdd(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	insecure := f.Bool("insecure", false, "skip the TLS certificate check of an https source")
	trusted := f.Bool("trusted", false, "mark the source trusted (Register-PackageSource -Trusted): PackageManagement installs from it without asking; providerd checks its images as --signatures says either way")
	username := f.String("username", "", "user name for the source's registry (with --password-stdin)")
	passwordStdin := f.Bool("password-stdin", false, "read the password from the first line of stdin")
	var trustKeys stringList
	f.Var(&trustKeys, "trust-key", "a public key `FILE` (cosign.pub, PEM) whose signatures the source's images must carry; repeatable")
	signatures := f.String("signatures", "", "the signature policy: required (refuse an image without a valid signature by a trusted key), optional (install it, recorded as unverified) or off; default off without --trust-key, required with it")
	var mirrors stringList
	f.Var(&mirrors, "mirror", "a registry mirror `SPEC`, "+cli.MirrorSyntax+" (a pull-through cache or a copy of the source), asked first for content by digest and, while the source is unreachable, for tags; repeatable, tried in order")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) != 2 {
			return cli.Usagef("source add takes NAME URL, got %q", args)
		}
		if (*username == "") != !*passwordStdin {
			return cli.Usagef("--username and --password-stdin go together")
		}
		src := api.Source{Name: args[0], Location: args[1], Insecure: *insecure, Trusted: *trusted, Username: *username, Signatures: *signatures}
		switch *signatures {
		case "", api.SignaturesRequired, api.SignaturesOptional, api.SignaturesOff:
		default:
			return cli.Usagef("--signatures %q: want required, optional or off", *signatures)
		}
		for _, path := range trustKeys {
			pem, err := os.ReadFile(path)
			if err != nil {
				return localError(path, err)
			}
			src.TrustKeys = append(src.TrustKeys, string(pem))
		}
		for _, spec := range mirrors {
			ms, err := cli.ParseMirror(spec)
			if err != nil {
				return err
			}
			if ms.PasswordFile != "" {
				b, err := os.ReadFile(ms.PasswordFile)
				if err != nil {
					return localError(ms.PasswordFile, err)
				}
				if ms.Mirror.Password, err = cli.FirstLine(strings.NewReader(string(b))); err != nil || ms.Mirror.Password == "" {
					return cli.Usagef("mirror %s: password-file %s holds no password", ms.Mirror.Location, ms.PasswordFile)
				}
			}
			src.Mirrors = append(src.Mirrors, ms.Mirror)
		}
		if *passwordStdin {
			password, err := cli.FirstLine(a.stdin)
			if err != nil {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			src.Password = password
			if src.Password == "" {
				return cli.Usagef("--password-stdin: stdin holds no password")
			}
		}
		added, err := c.AddSource(ctx, src)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, added)
		}
		trustedText := ""
		if added.Trusted {
			trustedText = ", trusted"
		}
		if _, err = fmt.Fprintf(a.stdout, "Added source %s (%s), signatures %s%s\n", added.Name, added.Location, signaturesText(added), trustedText); err != nil {
			return err
		}
		for i, m := range added.Mirrors {
			if _, err := fmt.Fprintf(a.stdout, "  mirror %d: %s\n", i+1, cli.MirrorString(m)); err != nil {
				return err
			}
		}
		return nil
	}
}

func setupSourceList(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("source list takes no argument, got %q", args)
		}
		sources, err := c.Sources(ctx)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, api.SourcesResponse{Sources: nonNil(sources)})
		}
		_, err = io.WriteString(a.stdout, formatSources(sources))
		return err
	}
}

func setupSourceRemove(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		name, err := oneArg("source remove", "NAME", args)
		if err != nil {
			return err
		}
		if err := c.RemoveSource(ctx, name); err != nil {
			return err
		}
		if g.output == outputJSON {
			// As container rm says it.
			return writeJSON(a.stdout, map[string]string{"removed": name})
		}
		_, err = fmt.Fprintf(a.stdout, "Removed source %s\n", name)
		return err
	}
}
