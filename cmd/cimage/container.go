package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// The columns of the container tables.
var containerColumns = []column{
	{header: "Name", width: 16},
	{header: "Id", width: 14},
	{header: "Image", width: 28},
	{header: "ParentImageName", width: 20},
	{header: "State", width: 10},
	{header: "Created"},
}

// shortID is the first 12 hex of an id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// formatContainers is the table of containers.
func (a *app) formatContainers(list []api.Container) string {
	rows := make([][]string, 0, len(list))
	for _, c := range list {
		rows = append(rows, []string{c.Name, shortID(c.ID), c.Image, c.ParentImageName, c.State, a.formatTime(c.Created)})
	}
	return formatTable(containerColumns, rows)
}

// printContainer prints one container: a one-row table, or JSON.
func (a *app) printContainer(g *globals, c api.Container) error {
	if g.output == outputJSON {
		return writeJSON(a.stdout, c)
	}
	_, err := io.WriteString(a.stdout, a.formatContainers([]api.Container{c}))
	return err
}

func setupContainerList(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("container list takes no argument, got %q", args)
		}
		list, err := c.Containers(ctx)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, struct {
				Containers []api.Container `json:"containers"`
			}{nonNil(list)})
		}
		_, err = io.WriteString(a.stdout, a.formatContainers(list))
		return err
	}
}

func setupContainerCreate(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	name := f.String("name", "", "the container's `name`, unique; empty picks one")
	return func(ctx context.Context, c *client.Client, args []string) error {
		image, err := oneArg("container create", "IMAGE (a name, name:version, a digest or an id prefix)", args)
		if err != nil {
			return err
		}
		created, err := c.CreateContainer(ctx, api.ContainerCreateRequest{Image: image, Name: *name})
		if err != nil {
			return err
		}
		return a.printContainer(g, created)
	}
}

// setupContainerState is start or stop: they only set the state.
func setupContainerState(verb string) func(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
		return func(ctx context.Context, c *client.Client, args []string) error {
			ref, err := oneArg("container "+verb, "container id, id prefix or name", args)
			if err != nil {
				return err
			}
			call := c.StartContainer
			if verb == "stop" {
				call = c.StopContainer
			}
			ctr, err := call(ctx, ref)
			if err != nil {
				return err
			}
			return a.printContainer(g, ctr)
		}
	}
}

func setupContainerRemove(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	force := f.Bool("force", false, "remove a running container too")
	return func(ctx context.Context, c *client.Client, args []string) error {
		ref, err := oneArg("container rm", "container id, id prefix or name", args)
		if err != nil {
			return err
		}
		if err := c.RemoveContainer(ctx, ref, *force); err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, map[string]string{"removed": ref})
		}
		_, err = fmt.Fprintf(a.stdout, "Removed container %s\n", ref)
		return err
	}
}

func setupContainerCopy(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	follow := f.Bool("follow-link", false, "copy what the symbolic links in SRC point at; without it a link is refused, as the container takes files and directories only")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) != 2 {
			return cli.Usagef("container cp takes SRC and CONTAINER:/dest, got %q", args)
		}
		src := args[0]
		ref, dest, ok := strings.Cut(args[1], ":")
		if !ok || ref == "" || dest == "" {
			return cli.Usagef("container cp: %q: want CONTAINER:/dest", args[1])
		}
		if src == "-" {
			// As with docker cp: stdin is a tar, sent as it is.
			if err := c.CopyToContainer(ctx, ref, dest, a.stdin); err != nil {
				return err
			}
		} else if err := copyPath(ctx, c, src, ref, dest, *follow); err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, map[string]string{"container": ref, "source": src, "destination": dest})
		}
		_, err := fmt.Fprintf(a.stdout, "Copied %s to %s:%s\n", src, ref, dest)
		return err
	}
}

// copyPath tars src (a file or a directory) and streams it into the
// container, as docker cp does: a file lands as dest/<its name>, a
// directory as dest/<its name>/...
func copyPath(ctx context.Context, c *client.Client, src, ref, dest string, follow bool) error {
	if _, err := os.Lstat(src); err != nil {
		return localError(src, err)
	}
	pr, pw := io.Pipe()
	tarErr := make(chan error, 1)
	go func() {
		err := writeTar(ctx, pw, src, follow)
		tarErr <- err
		pw.CloseWithError(err) // nil closes with io.EOF
	}()
	err := c.CopyToContainer(ctx, ref, dest, pr)
	// The request may end before the tar does (an early refusal): stop
	// the writer and take its error first, which says what was wrong
	// with SRC.
	_ = pr.CloseWithError(errCopyEnded)
	if terr := <-tarErr; terr != nil && !errors.Is(terr, errCopyEnded) {
		return terr
	}
	return err
}

var errCopyEnded = errors.New("the copy ended")

// maxCopyEntries bounds the files and directories of one copy, as
// providerd does; it also ends a walk through a loop of followed links.
const maxCopyEntries = 1 << 20

// writeTar writes src as a tar to w: its base name at the root, then, for
// a directory, everything under it, in lexical order. Regular files and
// directories only; a symbolic link is followed with follow and refused
// otherwise, and other file types are refused.
func writeTar(ctx context.Context, w io.Writer, src string, follow bool) error {
	tw := tar.NewWriter(w)
	root := filepath.Clean(src)
	base := filepath.Base(root)
	if base == string(filepath.Separator) || base == "." || base == ".." {
		abs, err := filepath.Abs(root)
		if err != nil {
			return localError(src, err)
		}
		base = filepath.Base(abs)
		if base == string(filepath.Separator) {
			return fmt.Errorf("container cp: copy the files under / one by one, not / itself: %w", errdefs.ErrInvalidArgument)
		}
	}
	entries := 0
	var walk func(path, name string, depth int) error
	walk = func(path, name string, depth int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if entries++; entries > maxCopyEntries {
			return fmt.Errorf("%s: more than %d entries to copy: %w", src, maxCopyEntries, errdefs.ErrTooLarge)
		}
		if depth > 256 {
			return fmt.Errorf("%s: more than 256 directory levels (a symbolic link loop?): %w", path, errdefs.ErrInvalidArgument)
		}
		st, err := os.Lstat(path)
		if err != nil {
			return localError(path, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			if !follow {
				return fmt.Errorf("%s is a symbolic link: a container takes files and directories only; --follow-link copies what it points at: %w", path, errdefs.ErrInvalidArgument)
			}
			if st, err = os.Stat(path); err != nil {
				return localError(path, err)
			}
		}
		switch {
		case st.Mode().IsRegular():
			return tarFile(tw, path, name, st)
		case st.IsDir():
			hdr, err := tar.FileInfoHeader(st, "")
			if err != nil {
				return localError(path, err)
			}
			hdr.Name = name + "/"
			clearOwner(hdr)
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			entries, err := os.ReadDir(path)
			if err != nil {
				return localError(path, err)
			}
			for _, e := range entries {
				if err := walk(filepath.Join(path, e.Name()), name+"/"+e.Name(), depth+1); err != nil {
					return err
				}
			}
			return nil
		default:
			return fmt.Errorf("%s is a %s, not a file or a directory: %w", path, st.Mode().Type(), errdefs.ErrInvalidArgument)
		}
	}
	if err := walk(root, base, 0); err != nil {
		return err
	}
	return tw.Close()
}

// tarFile writes one regular file.
func tarFile(tw *tar.Writer, path, name string, st fs.FileInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return localError(path, err)
	}
	defer f.Close()
	hdr, err := tar.FileInfoHeader(st, "")
	if err != nil {
		return localError(path, err)
	}
	hdr.Name = name
	clearOwner(hdr)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, io.LimitReader(f, st.Size()))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n != st.Size() {
		return fmt.Errorf("%s: shrank from %d to %d bytes while being copied", path, st.Size(), n)
	}
	return nil
}

// clearOwner drops the local owner: the container's files belong to no
// user of this host.
func clearOwner(hdr *tar.Header) {
	hdr.Uid, hdr.Gid = 0, 0
	hdr.Uname, hdr.Gname = "", ""
}
