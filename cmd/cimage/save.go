package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/provider"
)

func setupSave(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var v versionFlags
	v.register(f, g)
	id := f.String("id", "", "save the installed image of this digest or id prefix instead of a NAME")
	source := f.String("source", "", "save straight from this source, without installing the image (Save-Package)")
	path := f.String("path", "", "the `file or directory` to write; a directory gets <Name>-<version>.tar (required)")
	force := f.Bool("force", false, "overwrite an existing file, and create a missing directory")
	remote := f.Bool("remote-path", false, "--path is on providerd's host (an absolute path): providerd writes the file with your rights (unix socket only; the file is yours, mode 0600)")
	whatIf := f.Bool("what-if", false, "show the images the archive would hold and the file, and write nothing (no file or directory is checked or made)")
	return func(ctx context.Context, c *client.Client, args []string) error {
		req := api.SaveRequest{VersionOptions: v.VersionOptions, ID: *id, Source: *source}
		switch {
		case *path == "":
			return cli.Usagef("save needs --path FILE or DIRECTORY")
		case *id != "" && len(args) > 0:
			return cli.Usagef("save takes a NAME or --id, not both")
		case *id != "" && v.VersionOptions != (api.VersionOptions{}):
			return cli.Usagef("version options go with a NAME, not --id")
		case *id == "":
			name, err := oneArg("save", "NAME (or --id ID)", args)
			if err != nil {
				return err
			}
			req.Name = name
		}
		if *whatIf {
			return a.saveWhatIf(ctx, g, c, req, *path, *remote)
		}
		var res api.SaveResult
		if *remote {
			req.Path, req.Force = *path, *force
			var err error
			if res, err = c.SaveToPath(ctx, req); err != nil {
				return err
			}
		} else {
			var err error
			if res, err = a.saveLocal(ctx, g, c, req, *path, *force); err != nil {
				return err
			}
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, res)
		}
		_, err := fmt.Fprintf(a.stdout, "Saved %s %s to %s (%s)\n", res.Image.Name, res.Image.Version, res.Path, cli.HumanSize(res.Size))
		return err
	}
}

// saveWhatIf prints the plan of a save: each image of the archive,
// parents first, and the file it would go to. Nothing on the path is
// checked, so a plan never fails for the file's sake.
func (a *app) saveWhatIf(ctx context.Context, g *globals, c *client.Client, req api.SaveRequest, path string, remote bool) error {
	if remote {
		req.Path = path
	}
	res, err := c.PlanSave(ctx, req)
	if err != nil {
		return err
	}
	if !remote {
		// The server proposed the file name; a directory here gets it.
		if st, err := os.Stat(path); (err == nil && st.IsDir()) || strings.HasSuffix(path, string(filepath.Separator)) || strings.HasSuffix(path, "/") {
			path = filepath.Join(path, res.Path)
		}
		res.Path = path
	}
	if g.output == outputJSON {
		return writeJSON(a.stdout, res)
	}
	var b strings.Builder
	for _, img := range res.Images {
		fmt.Fprintf(&b, "What if: saving %s to %s\n", img, res.Path)
	}
	_, err = io.WriteString(a.stdout, b.String())
	return err
}

// saveTarget is where a local save writes: a directory, and the file in
// it when the path named one ("" until the image is known).
type saveTarget struct {
	dir  string
	file string
	// force overwrites an existing file.
	force bool
}

// planSave applies providerd's rules for a save path to a path on this
// host:
//   - an existing directory gets the default file name, once known;
//   - an existing file is refused (AlreadyExists) without force, and a
//     read-only file or directory (PermissionDenied) even with it;
//   - a path that does not exist is a file, or a directory when it ends
//     with a separator; its missing directory is refused (NotFound)
//     without force, and created with it.
func planSave(path string, force bool) (saveTarget, error) {
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return saveTarget{dir: path, force: force}, checkDirWritable(path)
	case err == nil:
		t := saveTarget{dir: filepath.Dir(path), file: filepath.Base(path), force: force}
		return t, t.checkFile()
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		// ENOTDIR: a file on the way, which ensureDir names.
		return saveTarget{}, localError(path, err)
	}
	dir, file := filepath.Dir(path), filepath.Base(path)
	if strings.HasSuffix(path, string(filepath.Separator)) || strings.HasSuffix(path, "/") {
		dir, file = filepath.Clean(path), ""
	}
	if err := ensureDir(dir, force); err != nil {
		return saveTarget{}, err
	}
	return saveTarget{dir: dir, file: file, force: force}, checkDirWritable(dir)
}

// ensureDir checks that dir is a directory; a missing one is NotFound
// without force, and created with it.
func ensureDir(dir string, force bool) error {
	st, err := os.Stat(dir)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("%s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
	case !errors.Is(err, fs.ErrNotExist):
		return localError(dir, err)
	case !force:
		return fmt.Errorf("directory %s does not exist; use --force to create it: %w", dir, errdefs.ErrNotFound)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return localError(dir, err)
	}
	return nil
}

// checkDirWritable refuses a read-only directory, or one this user cannot
// create files in, before any byte is downloaded.
func checkDirWritable(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("directory %s is read-only: %w", dir, errdefs.ErrPermissionDenied)
	}
	f, err := os.CreateTemp(dir, ".cimage-check-*")
	if err != nil {
		return fmt.Errorf("cannot write in directory %s: %w", dir, classify(err))
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return nil
}

// path is the target file, once its name is known.
func (t saveTarget) path() string { return filepath.Join(t.dir, t.file) }

// checkFile refuses a target that is a directory or not a regular file, a
// read-only file (even with force: the rename at the end would replace
// it, which is not what a read-only file asks for), and an existing file
// without force.
func (t saveTarget) checkFile() error {
	p := t.path()
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return localError(p, err)
	case st.IsDir():
		return fmt.Errorf("%s is a directory: %w", p, errdefs.ErrInvalidArgument)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file: %w", p, errdefs.ErrInvalidArgument)
	case st.Mode().Perm()&0o222 == 0:
		return fmt.Errorf("file %s is read-only: %w", p, errdefs.ErrPermissionDenied)
	case !t.force:
		return fmt.Errorf("file %s exists; use --force to overwrite it: %w", p, errdefs.ErrAlreadyExists)
	}
	return nil
}

// classify gives a local file error its class.
func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", errdefs.ErrPermissionDenied, unwrapPath(err))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, unwrapPath(err))
	default:
		return err
	}
}

// unwrapPath drops the op and path of a *fs.PathError, which the message
// names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// localError is err on path, with its class.
func localError(path string, err error) error {
	return fmt.Errorf("%s: %w", path, classify(err))
}

// saveLocal streams the archive of req from providerd into a file on this
// host, following planSave: the bytes go to a temporary file in the target
// directory, which is renamed once the archive is whole, so that the file
// appears whole or not at all.
func (a *app) saveLocal(ctx context.Context, g *globals, c *client.Client, req api.SaveRequest, path string, force bool) (api.SaveResult, error) {
	target, err := planSave(path, force)
	if err != nil {
		return api.SaveResult{}, err
	}
	stream, err := c.Save(ctx, req)
	if err != nil {
		return api.SaveResult{}, err
	}
	defer stream.Close()
	if target.file == "" && stream.FileName != "" {
		target.file = stream.FileName
	}
	if target.file != "" {
		if err := target.checkFile(); err != nil {
			return api.SaveResult{}, err
		}
	}

	tmp, err := os.CreateTemp(target.dir, ".cimage-save-*.tar.partial")
	if err != nil {
		return api.SaveResult{}, fmt.Errorf("cannot write in directory %s: %w", target.dir, classify(err))
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	label := req.Name
	if label == "" {
		label = req.ID
	}
	progress := a.newByteProgress(g, "Saving "+label)
	n, err := io.Copy(io.MultiWriter(tmp, progress), stream)
	progress.stop(err == nil)
	if err != nil {
		if ctx.Err() != nil {
			return api.SaveResult{}, fmt.Errorf("save of %s interrupted; nothing was written: %w", label, ctx.Err())
		}
		return api.SaveResult{}, fmt.Errorf("saving %s after %s: %w", label, cli.HumanSize(n), err)
	}
	if err := tmp.Sync(); err != nil {
		return api.SaveResult{}, localError(tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return api.SaveResult{}, localError(tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return api.SaveResult{}, localError(tmp.Name(), err)
	}

	img := stream.Image()
	if target.file == "" {
		if img.Name == "" || img.Version == "" {
			return api.SaveResult{}, fmt.Errorf("providerd did not name the saved image, so there is no default file name: give --path a file name")
		}
		target.file = provider.SaveFileName(img.Name, img.Version)
	}
	// Checked again: the file may have appeared while the archive came.
	if err := target.checkFile(); err != nil {
		return api.SaveResult{}, err
	}
	if err := os.Rename(tmp.Name(), target.path()); err != nil {
		return api.SaveResult{}, localError(target.path(), err)
	}
	committed = true
	syncDir(target.dir)
	abs, err := filepath.Abs(target.path())
	if err != nil {
		abs = target.path()
	}
	return api.SaveResult{Path: abs, Size: n, Image: img}, nil
}

// syncDir makes a rename in dir durable; a failure only loses durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
