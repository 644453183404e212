package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// tokenBytes is the size of a generated token, before its hex encoding.
const tokenBytes = 32

// loadToken returns the bearer token of the TCP listeners and the file it
// came from: --token-file when given, else ROOT/auth/token, which is made
// on first start with tokenBytes random bytes and mode 0600.
func loadToken(root, tokenFile string, log *logrus.Logger) (token, file string, err error) {
	if tokenFile != "" {
		token, err := readToken(tokenFile, log)
		return token, tokenFile, err
	}
	file = cli.TokenFile(root)
	if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
		if err := writeToken(file); err != nil {
			return "", file, fmt.Errorf("making the token: %w", err)
		}
		log.WithField("token_file", file).Info("made a bearer token for the TCP listeners")
	}
	token, err = readToken(file, log)
	return token, file, err
}

// writeToken makes a new token file, mode 0600 in a directory of mode 0700.
// It never replaces a file: a token another process made first wins.
func writeToken(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(b) + "\n"); err != nil {
		f.Close()
		os.Remove(file)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(file)
		return err
	}
	return f.Close()
}

// readToken reads the bearer token: the first line of path, trimmed. A
// file that others can read is accepted with a warning.
func readToken(path string, log *logrus.Logger) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", cli.Usagef("token file: %v", err)
	}
	if !st.Mode().IsRegular() {
		return "", cli.Usagef("token file %s: not a regular file", path)
	}
	if st.Size() > 4096 {
		return "", cli.Usagef("token file %s: larger than 4 KiB; it should hold one token", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", cli.Usagef("token file: %v", err)
	}
	token, _, _ := strings.Cut(string(data), "\n")
	token = strings.TrimSpace(token)
	if len(token) < minTokenLength {
		return "", cli.Usagef("token file %s: the token must have at least %d characters", path, minTokenLength)
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", cli.Usagef("token file %s: the token must not hold spaces or control characters", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.WithField("token_file", path).Warn("the token file can be read by other users: chmod 600 it")
	}
	return token, nil
}
