package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// UnixClient is an HTTP client whose every connection goes to the unix
// socket sock, as providerd's API v1 is served there.
func UnixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// Install starts an install through providerd's API v1 at base (the URL
// whose host hc reaches, e.g. "http://providerd") and waits, at most 10
// minutes, for its job to end; it returns the image installed.
func Install(hc *http.Client, base string, req api.InstallRequest) (api.Image, error) {
	body, _ := json.Marshal(req)
	resp, err := hc.Post(base+"/v1/images/install", "application/json", bytes.NewReader(body))
	if err != nil {
		return api.Image{}, err
	}
	var job api.Job
	err = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		return api.Image{}, fmt.Errorf("install %s: %s %v", req.Name, resp.Status, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(base + "/v1/jobs/" + job.ID)
		if err != nil {
			return api.Image{}, err
		}
		err = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if err != nil {
			return api.Image{}, err
		}
		switch job.State {
		case api.JobSucceeded:
			if job.Result == nil {
				return api.Image{}, fmt.Errorf("install %s: job %s has no result", req.Name, job.ID)
			}
			return *job.Result, nil
		case api.JobFailed, api.JobCanceled:
			return api.Image{}, fmt.Errorf("install %s: %s: %+v", req.Name, job.State, job.Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return api.Image{}, fmt.Errorf("install %s: not done in 10 minutes", req.Name)
}

// RemoveImage removes the installed images that name names, through
// providerd's API v1 at base.
func RemoveImage(hc *http.Client, base, name string) error {
	req, _ := http.NewRequest(http.MethodDelete, base+"/v1/images?name="+url.QueryEscape(name), nil)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("remove %s: %s", name, resp.Status)
	}
	return nil
}
