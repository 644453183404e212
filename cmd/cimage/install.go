package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/provider/archive"
)

func setupInstall(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var v versionFlags
	v.register(f, g)
	source := f.String("source", "", "install from this source only")
	force := f.Bool("force", false, "reinstall an installed image: verify every blob again and download the missing or corrupt ones")
	noParents := f.Bool("no-parents", false, "do not install missing parent images: fail, naming the missing parent")
	detach := f.Bool("detach", false, "print the job id and return at once; the job runs on in providerd")
	quiet := f.Bool("quiet", false, "print only the closing `Downloaded in …` line, as Install-ContainerImage does, and warnings on stderr")
	path := f.String("path", "", "install the images of an image archive instead of a NAME (Install-ContainerImage -Path): a tar `FILE` (providerd's, docker save, skopeo oci-archive: or docker-archive:, crane pull), or a DIRECTORY holding an OCI layout (skopeo oci:, crane pull --format oci, oras copy --to-oci-layout)")
	remote := f.Bool("remote-path", false, "--path is on providerd's host (an absolute path): providerd reads it with your rights (unix socket only)")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if *path != "" {
			switch {
			case len(args) > 0:
				return cli.Usagef("install takes a NAME or --path, not both")
			case v.VersionOptions != (api.VersionOptions{}) || *source != "" || *force || *noParents || *detach || *quiet:
				return cli.Usagef("--path installs what the archive holds: version options, --source, --force, --no-parents, --detach and --quiet go with a NAME")
			}
			return a.installPath(ctx, g, c, *path, *remote)
		}
		if *remote {
			return cli.Usagef("--remote-path goes with --path")
		}
		name, err := oneArg("install", "NAME (or --path FILE)", args)
		if err != nil {
			return err
		}
		req := api.InstallRequest{Name: name, VersionOptions: v.VersionOptions, Source: *source, Force: *force, NoParents: *noParents}
		if *detach {
			job, err := c.Install(ctx, req)
			if err != nil {
				return err
			}
			if g.output == outputJSON {
				return writeJSON(a.stdout, job)
			}
			_, err = fmt.Fprintln(a.stdout, job.ID)
			return err
		}
		stream, err := c.InstallFollow(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(a.stderr, "Interrupted before the job's stream began; if the job started, it goes on in providerd: see `cimage jobs`.\n")
				return errDetached
			}
			return err
		}
		return a.follow(ctx, g, stream, *quiet)
	}
}

// installPath installs a saved archive: a local file uploaded to
// providerd, a local layout directory streamed to it as a tar, or with
// remote a file on providerd's host. It prints the images installed,
// parents first.
func (a *app) installPath(ctx context.Context, g *globals, c *client.Client, path string, remote bool) error {
	var res api.LoadResult
	if remote {
		var err error
		if res, err = c.LoadFile(ctx, path); err != nil {
			return err
		}
	} else {
		f, err := os.Open(path)
		if err != nil {
			return localError(path, err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return localError(path, err)
		}
		if st.IsDir() {
			if res, err = a.uploadDir(ctx, g, c, path); err != nil {
				return err
			}
			return a.printLoaded(g, res)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a file or a directory: %w", path, errdefs.ErrInvalidArgument)
		}
		progress := a.newByteProgress(g, "Uploading "+filepath.Base(path))
		// The section reader keeps the length known, for the request's
		// Content-Length, while the tee counts the bytes.
		body := &sizedTee{r: io.NewSectionReader(f, 0, st.Size()), w: progress}
		res, err = c.Load(ctx, body)
		progress.stop(err == nil)
		if err != nil {
			return err
		}
	}
	return a.printLoaded(g, res)
}

// printLoaded prints the images an archive installed.
func (a *app) printLoaded(g *globals, res api.LoadResult) error {
	if g.output == outputJSON {
		res.Images = nonNil(res.Images)
		return writeJSON(a.stdout, res)
	}
	_, err := io.WriteString(a.stdout, formatImages(res.Images))
	return err
}

// errUploadDone ends the tar of a directory that providerd stopped reading.
var errUploadDone = errors.New("upload ended")

// uploadDir streams the archive that the directory dir holds (an OCI
// layout, see archive.WriteDir) to providerd as a tar made on the fly,
// read with the user's own rights. A local failure (a file that cannot be
// read) is the error, rather than the broken upload it causes.
func (a *app) uploadDir(ctx context.Context, g *globals, c *client.Client, dir string) (api.LoadResult, error) {
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := archive.WriteDir(ctx, pw, dir)
		pw.CloseWithError(err)
		werr <- err
	}()
	progress := a.newByteProgress(g, "Uploading "+filepath.Base(filepath.Clean(dir)))
	res, err := c.Load(ctx, io.TeeReader(pr, progress))
	pr.CloseWithError(errUploadDone)
	if local := <-werr; local != nil && !errors.Is(local, errUploadDone) {
		err = local
	}
	progress.stop(err == nil)
	return res, err
}

// sizedTee reads a section and writes what it reads to w, keeping the
// section's Size and Seek so that its length stays known.
type sizedTee struct {
	r *io.SectionReader
	w io.Writer
}

func (t *sizedTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		_, _ = t.w.Write(p[:n])
	}
	return n, err
}

func (t *sizedTee) Size() int64 { return t.r.Size() }

func (t *sizedTee) Seek(off int64, whence int) (int64, error) { return t.r.Seek(off, whence) }

// follow prints the events of a job until its result, then what the job
// came to: its closing sentence, or its error. Ctrl-C (the end of ctx)
// detaches: the job goes on in providerd, and follow says how to
// re-attach; it never cancels the job.
func (a *app) follow(ctx context.Context, g *globals, stream *client.EventStream, quiet bool) error {
	defer stream.Close()
	// A Next that waits for the next event returns when the stream closes.
	stop := context.AfterFunc(ctx, func() { _ = stream.Close() })
	defer stop()

	r := a.newRenderer(g, quiet)
	var result *api.Job
	for {
		ev, err := stream.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.stop()
			id := stream.JobID()
			if ctx.Err() != nil {
				fmt.Fprintf(a.stderr, "Detached from job %s: it goes on in providerd. Re-attach with: cimage jobs attach %s\n", id, id)
				return errDetached
			}
			if errors.Is(err, client.ErrStreamEnded) {
				return fmt.Errorf("the stream of job %s ended before the job did (providerd stopped, or the connection dropped); "+
					"the job goes on when providerd runs: re-attach with `cimage jobs attach %s`", id, id)
			}
			return err
		}
		r.event(ev)
		if ev.Type == api.EventResult {
			result = ev.Job
		}
	}
	r.stop()
	return a.outcome(g, stream.JobID(), result)
}

// outcome prints the closing sentence of a job that succeeded, and turns
// a job that did not into an error.
func (a *app) outcome(g *globals, id string, job *api.Job) error {
	if job == nil {
		return fmt.Errorf("job %s: the result event carries no job", id)
	}
	switch job.State {
	case api.JobSucceeded:
		if g.output == outputJSON || job.Message == "" {
			return nil
		}
		_, err := fmt.Fprintln(a.stdout, job.Message)
		return err
	case api.JobCanceled:
		return fmt.Errorf("job %s was canceled; its downloaded data stays for the next install", job.ID)
	default:
		return &jobError{job: *job}
	}
}

// jobError is the error of a failed job. Its class is that of the job's
// error code, so that a job that found no image exits with 3.
type jobError struct{ job api.Job }

func (e *jobError) Error() string {
	if e.job.Error != nil && e.job.Error.Message != "" {
		return e.job.Error.Message
	}
	return fmt.Sprintf("job %s %s", e.job.ID, e.job.State)
}

func (e *jobError) Unwrap() error {
	if e.job.Error == nil {
		return nil
	}
	return api.ErrorClass(e.job.Error.Code)
}
