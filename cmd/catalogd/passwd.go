package main

import (
	"context"
	"fmt"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	catalogserver "github.com/containerprovider/containerprovider/server/catalog"
)

type passwdConfig struct {
	cli.DaemonFlags
	htpasswd string
}

func (c *passwdConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, rootUsage)
	f.StringVar(&c.htpasswd, "htpasswd", "", "htpasswd file to update (default <root>/auth/htpasswd)")
}

// path is the htpasswd file to update.
func (c *passwdConfig) path() string {
	if c.htpasswd != "" {
		return c.htpasswd
	}
	return defaultHtpasswd(c.Root)
}

func (a *app) setupPasswd(f *cli.FlagSet) func(context.Context, []string) error {
	c := &passwdConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return cli.Usagef("want exactly one argument, the user name")
		}
		if c.htpasswd == "" {
			if err := c.DaemonFlags.Check(); err != nil {
				return err
			}
		}
		user := args[0]
		password, err := cli.FirstLine(a.stdin)
		if err != nil {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		if password == "" {
			return cli.Usagef("no password on stdin (give it as the first line, e.g. from a file or a pipe)")
		}
		if err := catalogserver.SetPassword(c.path(), user, password); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "password of %s set in %s; a running catalogd serve takes it at its next authentication\n", user, c.path())
		return nil
	}
}
