package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/publish"
	"github.com/containerprovider/containerprovider/catalog/signing"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// The environment variables of a key's password: catalogd's own, then
// cosign's, so that a key made by `cosign generate-key-pair` is read as
// cosign reads it.
const (
	envKeyPassword    = "CATALOGD_KEY_PASSWORD"
	envCosignPassword = "COSIGN_PASSWORD"
)

// keyPassword is the password of a private key: the first line of stdin
// with passwordStdin, else $CATALOGD_KEY_PASSWORD, else $COSIGN_PASSWORD.
// required refuses to go without one (keygen: a key must not end up
// unprotected by accident; an empty first line on stdin is an explicit
// empty password, as cosign allows). Passwords never come from flags,
// which other users can read in the process list.
func (a *app) keyPassword(passwordStdin, required bool) ([]byte, error) {
	if passwordStdin {
		line, err := cli.FirstLine(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the key's password from stdin: %w", err)
		}
		return []byte(line), nil
	}
	for _, env := range []string{envKeyPassword, envCosignPassword} {
		if v := a.getenv(env); v != "" {
			return []byte(v), nil
		}
	}
	if required {
		return nil, cli.Usagef("give the key's password in $%s (or $%s), or as the first line of stdin with --password-stdin (an empty line for none)",
			envKeyPassword, envCosignPassword)
	}
	return []byte{}, nil
}

// loadSigner reads the private key file path, decrypted with the password
// of keyPassword.
func (a *app) loadSigner(path string, passwordStdin bool) (*signing.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.stderr, "catalogd: warning: the signing key %s can be read by other users (mode %04o); chmod 600 it\n", path, st.Mode().Perm())
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	password, err := a.keyPassword(passwordStdin, false)
	if err != nil {
		return nil, err
	}
	s, err := signing.LoadSigner(pem, password)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w (its password comes from $%s, $%s or --password-stdin)", path, err, envKeyPassword, envCosignPassword)
	}
	return s, nil
}

// signKeyFlags are the flags of a command that can sign.
type signKeyFlags struct {
	key           string
	passwordStdin bool
}

func (k *signKeyFlags) register(f *cli.FlagSet, name, usage string) {
	f.StringVar(&k.key, name, "", usage)
	f.BoolVar(&k.passwordStdin, "password-stdin", false, "read the signing key's password from the first line of stdin (default: $"+envKeyPassword+", else $"+envCosignPassword+", else none)")
}

type keygenConfig struct {
	out           string
	algorithm     string
	force         bool
	passwordStdin bool
}

func (a *app) setupKeygen(f *cli.FlagSet) func(context.Context, []string) error {
	c := &keygenConfig{}
	f.StringVar(&c.out, "out", "cosign", "the key files' `prefix`: PREFIX.key (the private key, mode 0600) and PREFIX.pub")
	f.StringVar(&c.algorithm, "algorithm", signing.KeyECDSAP256, "the key's algorithm: "+signing.KeyECDSAP256+" (cosign's) or "+signing.KeyEd25519)
	f.BoolVar(&c.force, "force", false, "overwrite existing key files")
	f.BoolVar(&c.passwordStdin, "password-stdin", false, "read the password from the first line of stdin (default: $"+envKeyPassword+", else $"+envCosignPassword+")")
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("unexpected arguments %q", args)
		}
		if c.algorithm != signing.KeyECDSAP256 && c.algorithm != signing.KeyEd25519 {
			return cli.Usagef("--algorithm %q: want %s or %s", c.algorithm, signing.KeyECDSAP256, signing.KeyEd25519)
		}
		password, err := a.keyPassword(c.passwordStdin, true)
		if err != nil {
			return err
		}
		priv, pub, err := signing.GenerateKeyPair(c.algorithm, password)
		if err != nil {
			return err
		}
		keyFile, pubFile := c.out+".key", c.out+".pub"
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if c.force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		for _, f := range []struct {
			path string
			data []byte
			mode os.FileMode
		}{{keyFile, priv, 0o600}, {pubFile, pub, 0o644}} {
			if err := writeKeyFile(f.path, f.data, f.mode, flags); err != nil {
				return err
			}
		}
		fmt.Fprintf(a.stdout, "Private key written to %s\nPublic key written to %s\n", keyFile, pubFile)
		return nil
	}
}

// writeKeyFile writes a key file with mode, through flags (O_EXCL: refuse
// an existing file).
func writeKeyFile(path string, data []byte, mode os.FileMode, flags int) error {
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it: %w", path, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type signConfig struct {
	cli.DaemonFlags
	signKeyFlags
	baseHost string
}

func (a *app) setupSign(f *cli.FlagSet) func(context.Context, []string) error {
	c := &signConfig{}
	c.DaemonFlags.Register(f, rootUsage)
	c.signKeyFlags.register(f, "key", "the private key `file` (cosign's format, e.g. from catalogd keygen or cosign generate-key-pair) (required)")
	f.StringVar(&c.baseHost, "base-host", "", "the registry `host` clients reach this catalog by; the signature's docker-reference is then HOST/repo, as cosign writes it")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return cli.Usagef("give the images to sign: NAME or NAME:VERSION (a display name or a repository; without a version, the latest)")
		}
		if c.key == "" {
			return cli.Usagef("--key is required")
		}
		if err := c.DaemonFlags.Check(); err != nil {
			return err
		}
		if c.baseHost != "" {
			if err := publish.CheckBaseHost(c.baseHost); err != nil {
				return cli.UsageError{Err: err}
			}
		}
		s, err := a.loadSigner(c.key, c.passwordStdin)
		if err != nil {
			return err
		}
		rt, err := openRoot(c.Root)
		if err != nil {
			return err
		}
		defer rt.Close()
		for _, arg := range args {
			e, err := resolveImage(ctx, rt, arg)
			if err != nil {
				return err
			}
			rec, err := publish.Sign(ctx, rt.reg, e.Repository, e.Digest, c.baseHost, s)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Signed %s %s (%s) with key %s\n", e.Name, e.Version, rec.Digest, s.KeyID)
		}
		return nil
	}
}

// resolveImage finds the image that NAME[:VERSION] names, as Find does:
// by display name or repository, the latest version without one.
func resolveImage(ctx context.Context, rt *root, arg string) (api.FindEntry, error) {
	name, ver, _ := strings.Cut(arg, ":")
	opts := find.Options{Name: name, RequiredVersion: ver}
	if find.HasWildcard(name) || name == "" {
		return api.FindEntry{}, cli.Usagef("%q: give a name or a repository without wildcards", arg)
	}
	entries, err := rt.reg.Find(ctx, opts)
	if err != nil {
		return api.FindEntry{}, fmt.Errorf("%s: %w", arg, err)
	}
	if len(entries) != 1 {
		return api.FindEntry{}, fmt.Errorf("%s: %d images match; give NAME:VERSION: %w", arg, len(entries), errdefs.ErrConflict)
	}
	return entries[0], nil
}
