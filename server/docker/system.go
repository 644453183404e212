package docker

import (
	"net/http"
	"os"
	"runtime"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/provider"
)

// The values of the ping headers and of /version and /info.
const (
	osType        = "windows"
	platformName  = "providerd"
	componentName = "Engine"
)

// ping answers HEAD and GET /_ping with the headers the CLI negotiates
// with: Api-Version, Ostype, Docker-Experimental and Swarm.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Api-Version", APIVersion)
	h.Set("Ostype", osType)
	h.Set("Docker-Experimental", "false")
	h.Set("Swarm", "inactive")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("OK"))
	}
	return nil
}

// componentVersion is moby's ComponentVersion.
type componentVersion struct {
	Name    string            `json:"Name"`
	Version string            `json:"Version"`
	Details map[string]string `json:"Details,omitempty"`
}

// systemVersion is moby's SystemVersion (GET /version).
type systemVersion struct {
	Platform      struct{ Name string } `json:"Platform"`
	Components    []componentVersion    `json:"Components"`
	Version       string                `json:"Version"`
	APIVersion    string                `json:"ApiVersion"`
	MinAPIVersion string                `json:"MinAPIVersion"`
	GitCommit     string                `json:"GitCommit"`
	GoVersion     string                `json:"GoVersion"`
	Os            string                `json:"Os"`
	Arch          string                `json:"Arch"`
	KernelVersion string                `json:"KernelVersion,omitempty"`
	BuildTime     string                `json:"BuildTime,omitempty"`
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	v := systemVersion{
		Version:       s.opts.version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GoVersion:     runtime.Version(),
		Os:            osType,
		Arch:          runtime.GOARCH,
	}
	v.Platform.Name = platformName
	v.Components = []componentVersion{{
		Name:    componentName,
		Version: s.opts.version,
		Details: map[string]string{
			"ApiVersion":    APIVersion,
			"MinAPIVersion": MinAPIVersion,
			"GoVersion":     v.GoVersion,
			"Os":            osType,
			"Arch":          v.Arch,
		},
	}}
	return writeJSON(w, v)
}

// systemInfo is the subset of moby's SystemInfo (GET /info) that providerd
// can answer.
type systemInfo struct {
	ID                string `json:"ID"`
	Containers        int    `json:"Containers"`
	ContainersRunning int    `json:"ContainersRunning"`
	ContainersPaused  int    `json:"ContainersPaused"`
	ContainersStopped int    `json:"ContainersStopped"`
	Images            int    `json:"Images"`
	Driver            string `json:"Driver"`
	DockerRootDir     string `json:"DockerRootDir"`
	Name              string `json:"Name"`
	ServerVersion     string `json:"ServerVersion"`
	OSType            string `json:"OSType"`
	OperatingSystem   string `json:"OperatingSystem"`
	Architecture      string `json:"Architecture"`
	NCPU              int    `json:"NCPU"`
	ExperimentalBuild bool   `json:"ExperimentalBuild"`
	Swarm             struct {
		LocalNodeState string `json:"LocalNodeState"`
	} `json:"Swarm"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.backend.Images(r.Context(), provider.GetOptions{})
	if err != nil {
		return err
	}
	ctrs, err := s.backend.Containers(r.Context())
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	in := systemInfo{
		Containers:      len(ctrs),
		Images:          len(imgs),
		Driver:          platformName,
		DockerRootDir:   s.opts.root,
		Name:            host,
		ServerVersion:   s.opts.version,
		OSType:          osType,
		OperatingSystem: "providerd (" + runtime.GOOS + ")",
		Architecture:    runtime.GOARCH,
		NCPU:            runtime.NumCPU(),
	}
	in.Swarm.LocalNodeState = "inactive"
	for _, c := range ctrs {
		switch c.State {
		case api.ContainerRunning:
			in.ContainersRunning++
		default:
			in.ContainersStopped++
		}
	}
	return writeJSON(w, in)
}
