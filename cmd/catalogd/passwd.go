package main

import (
	"context"
	"fmt"

	catalogserver "github.com/containerprovider/containerprovider/server/catalog"
)

type passwdConfig struct {
	common
	htpasswd string
}

func (c *passwdConfig) register(f *flagSet) {
	c.common.register(f)
	f.stringVar(&c.htpasswd, "htpasswd", "", "htpasswd file to update (default <root>/auth/htpasswd)")
}

// path is the htpasswd file to update.
func (c *passwdConfig) path() string {
	if c.htpasswd != "" {
		return c.htpasswd
	}
	return defaultHtpasswd(c.root)
}

func setupPasswd(a *app, f *flagSet) func(context.Context, []string) error {
	c := &passwdConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		if len(args) != 1 {
			return usagef("want exactly one argument, the user name")
		}
		if c.htpasswd == "" {
			if err := c.common.check(); err != nil {
				return usageError{err}
			}
		}
		user := args[0]
		password, err := oneLine(a.stdin)
		if err != nil {
			return fmt.Errorf("reading the password from stdin: %w", err)
		}
		if password == "" {
			return usagef("no password on stdin (give it as the first line, e.g. from a file or a pipe)")
		}
		if err := catalogserver.SetPassword(c.path(), user, password); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "password of %s set in %s; a running catalogd serve reads it on its next start\n", user, c.path())
		return nil
	}
}
