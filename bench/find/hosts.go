package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/bench/harness"
)

// hostFigures are the figures of a providerd with many installed images.
type hostFigures struct {
	images, clients int
	installTime     time.Duration
	getByName       []time.Duration
	getSize         int
	listing         []time.Duration
	listingSize     int
	restart         []time.Duration
	records         int
	rss, anon       int64
}

// hostRecords installs images layerless images (App<i> 1.0.<v>, in the
// order of the catalog) into a new providerd with clients concurrent
// clients, then times Get by name, the full listing, and restarts to a
// served /healthz.
//
// With records above what the installs wrote (an image record and a job
// record each), more images are installed, up to the catalog's size,
// before the restarts, so that a start meets that many records.
func hostRecords(procs *harness.Procs, bin, work, catalogBase string, images, records, catalogSize, names, versions, clients, requests int, anon *anonPeak) (hostFigures, error) {
	f := hostFigures{images: images, clients: clients}
	label := "hosts"
	p, err := launchProviderd(procs, bin, work, label, "catalog="+catalogBase, "--job-retention-count", "-1")
	if err != nil {
		return f, err
	}
	anon.watch(p.pid)
	if err := harness.WaitFor("providerd "+label, time.Minute, func() error {
		_, err := p.c.Sources(context.Background())
		return err
	}); err != nil {
		return f, err
	}
	if _, _, err := p.waitSynced("catalog", 30*time.Minute); err != nil {
		return f, err
	}
	harness.Step("providerd: %d layerless installs with %d clients", images, clients)
	start := time.Now()
	if err := installRange(p.c, 0, images, names, versions, clients); err != nil {
		return f, err
	}
	f.installTime = time.Since(start)
	harness.Step("  %v, %.0f installs/s", f.installTime.Round(time.Millisecond), float64(images)/f.installTime.Seconds())

	hc := &http.Client{Timeout: time.Minute}
	auth := http.Header{"Authorization": {"Bearer " + p.token}}
	name := fmt.Sprintf("App%05d", min(images/versions, names)/2)
	if f.getByName, f.getSize, err = measureWith(hc, "http://"+p.addr+"/v1/images?name="+name, requests, auth); err != nil {
		return f, err
	}
	harness.Step("Get by name: p50 %v", pct(f.getByName, 50))
	if f.listing, f.listingSize, err = measureWith(hc, "http://"+p.addr+"/v1/images", 20, auth); err != nil {
		return f, err
	}
	harness.Step("full listing: p50 %v (%d bytes)", pct(f.listing, 50), f.listingSize)
	f.rss, _ = harness.PeakRSS(p.pid)
	f.anon = anon.peak(p.pid)
	jobs, err := p.c.Jobs(context.Background())
	if err != nil {
		return f, err
	}
	f.records = images + len(jobs)
	if more := min((records-f.records+1)/2, catalogSize-images); more > 0 {
		harness.Step("providerd: %d more installs, for a start that meets %d records", more, records)
		if err := installRange(p.c, images, images+more, names, versions, clients); err != nil {
			return f, err
		}
		if jobs, err = p.c.Jobs(context.Background()); err != nil {
			return f, err
		}
		f.records = images + more + len(jobs)
	}

	// Restarts: stop providerd, start it on the same root, time the first
	// served /healthz.
	for range 5 {
		if err := procs.Stop(p.pid); err != nil {
			return f, err
		}
		began := time.Now()
		if p, err = launchProviderd(procs, bin, work, label, "catalog="+catalogBase, "--job-retention-count", "-1"); err != nil {
			return f, err
		}
		served := false
		for !served && time.Since(began) < time.Minute {
			req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/healthz", nil)
			req.Header = auth
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				served = resp.StatusCode == http.StatusOK
			}
			if !served {
				time.Sleep(2 * time.Millisecond)
			}
		}
		if !served {
			return f, fmt.Errorf("providerd did not serve /healthz within a minute of a restart")
		}
		f.restart = append(f.restart, time.Since(began))
	}
	harness.Step("restart to /healthz: p50 %v", pct(f.restart, 50))
	return f, nil
}

// installRange installs the images from..to of the catalog (App<i>
// 1.0.<v>, in its order) with clients concurrent clients, each waiting
// for its job's end.
func installRange(c *client.Client, from, to, names, versions, clients int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				name := fmt.Sprintf("App%05d", (i/versions)%names)
				version := fmt.Sprintf("1.0.%d", i%versions)
				if err := installWait(c, name, version); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// installWait installs name version and waits for the job's end.
func installWait(c *client.Client, name, version string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	jb, err := c.Install(ctx, api.InstallRequest{Name: name, VersionOptions: api.VersionOptions{RequiredVersion: version}})
	if err != nil {
		return fmt.Errorf("install %s %s: %w", name, version, err)
	}
	for range 30000 {
		switch jb.State {
		case api.JobSucceeded:
			return nil
		case api.JobFailed, api.JobCanceled:
			return fmt.Errorf("install %s %s: %s: %+v", name, version, jb.State, jb.Error)
		}
		time.Sleep(2 * time.Millisecond)
		if jb, err = c.Job(ctx, jb.ID); err != nil {
			return err
		}
	}
	return fmt.Errorf("install %s %s: not done", name, version)
}
