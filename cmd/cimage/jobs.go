package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// timeLayout is how cimage prints times.
const timeLayout = "2006-01-02 15:04:05"

var jobsColumns = []column{
	{header: "Id", width: 10},
	{header: "State", width: 11},
	{header: "Image", width: 28},
	{header: "Progress", width: 24},
	{header: "Started", width: 21},
	{header: "Message"},
}

// jobProgress sums the bytes of a job's blobs: "done / total".
func jobProgress(j api.Job) string {
	if len(j.Blobs) == 0 {
		return ""
	}
	var done, total int64
	for _, b := range j.Blobs {
		total += b.Total
		switch b.State {
		case blobDone, blobPresent:
			done += b.Total
		default:
			done += b.Done
		}
	}
	return cli.HumanSize(done) + " / " + cli.HumanSize(total)
}

// jobImage names what a job installs: the images it resolved, else its
// request.
func jobImage(j api.Job) string {
	if len(j.Images) > 0 {
		return strings.Join(j.Images, ", ")
	}
	return strings.TrimSpace(j.Request.Name + " " + describeVersions(j.Request.VersionOptions))
}

// jobMessage is a job's closing sentence or its error.
func jobMessage(j api.Job) string {
	if j.Error != nil {
		return j.Error.Message
	}
	return j.Message
}

func (a *app) formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(a.loc).Format(timeLayout)
}

// formatJobs is the table of jobs.
func (a *app) formatJobs(jobs []api.Job) string {
	rows := make([][]string, 0, len(jobs))
	for _, j := range jobs {
		rows = append(rows, []string{j.ID, j.State, jobImage(j), jobProgress(j), a.formatTime(j.Started), jobMessage(j)})
	}
	return formatTable(jobsColumns, rows)
}

// formatJob is one job as Format-List prints it, then its blobs.
func (a *app) formatJob(j api.Job) string {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%-9s: %s\n", k, v) }
	field("Id", j.ID)
	field("Kind", j.Kind)
	field("State", j.State)
	field("Request", strings.TrimSpace(j.Request.Name+" "+describeVersions(j.Request.VersionOptions)))
	field("Images", strings.Join(j.Images, ", "))
	field("Started", a.formatTime(j.Started))
	field("Finished", a.formatTime(j.Finished))
	field("Progress", jobProgress(j))
	field("Message", j.Message)
	if j.Error != nil {
		field("Error", j.Error.Message)
	}
	if len(j.Blobs) > 0 {
		b.WriteString("\n")
		rows := make([][]string, 0, len(j.Blobs))
		for _, bl := range j.Blobs {
			rows = append(rows, []string{shortDigest(bl.Digest), bl.Image, bl.State, cli.HumanSize(bl.Done) + " / " + cli.HumanSize(bl.Total)})
		}
		b.WriteString(formatTable([]column{
			{header: "Blob", width: 21}, {header: "Image", width: 28}, {header: "State", width: 13}, {header: "Bytes"},
		}, rows))
	}
	return b.String()
}

func setupJobs(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("unknown jobs subcommand %q: want show, attach or cancel", args[0])
		}
		jobs, err := c.Jobs(ctx)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, api.JobsResponse{Jobs: nonNil(jobs)})
		}
		_, err = io.WriteString(a.stdout, a.formatJobs(jobs))
		return err
	}
}

func setupJobShow(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		id, err := oneArg("jobs show", "ID", args)
		if err != nil {
			return err
		}
		job, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, job)
		}
		_, err = io.WriteString(a.stdout, a.formatJob(job))
		return err
	}
}

func setupJobAttach(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	quiet := f.Bool("quiet", false, "print only the closing line, and warnings on stderr")
	return func(ctx context.Context, c *client.Client, args []string) error {
		id, err := oneArg("jobs attach", "ID", args)
		if err != nil {
			return err
		}
		stream, err := c.Events(ctx, id)
		if err != nil {
			return err
		}
		return a.follow(ctx, g, stream, *quiet)
	}
}

func setupJobCancel(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		id, err := oneArg("jobs cancel", "ID", args)
		if err != nil {
			return err
		}
		job, err := c.Cancel(ctx, id)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, job)
		}
		_, err = fmt.Fprintf(a.stdout, "Job %s %s\n", job.ID, job.State)
		return err
	}
}
