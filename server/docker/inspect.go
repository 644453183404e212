package docker

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/containerprovider/containerprovider/api"
)

// containerInspect is the part of moby's ContainerInspectResponse that
// providerd knows: the container's id, name, image, state and creation
// time. A container runs no process, so Path and Args are empty, and the
// objects the CLI's templates may walk (Config, HostConfig, State,
// NetworkSettings) are present, with their zero values.
type containerInspect struct {
	ID              string          `json:"Id"`
	Created         string          `json:"Created"`
	Path            string          `json:"Path"`
	Args            []string        `json:"Args"`
	State           containerState  `json:"State"`
	Image           string          `json:"Image"`
	Name            string          `json:"Name"`
	RestartCount    int             `json:"RestartCount"`
	Driver          string          `json:"Driver"`
	Platform        string          `json:"Platform"`
	HostConfig      hostConfig      `json:"HostConfig"`
	GraphDriver     graphDriver     `json:"GraphDriver"`
	Mounts          []any           `json:"Mounts"`
	Config          containerConfig `json:"Config"`
	NetworkSettings networkSettings `json:"NetworkSettings"`
}

// containerState is moby's ContainerState.
type containerState struct {
	Status     string `json:"Status"`
	Running    bool   `json:"Running"`
	Paused     bool   `json:"Paused"`
	Restarting bool   `json:"Restarting"`
	OOMKilled  bool   `json:"OOMKilled"`
	Dead       bool   `json:"Dead"`
	Pid        int    `json:"Pid"`
	ExitCode   int    `json:"ExitCode"`
	Error      string `json:"Error"`
	StartedAt  string `json:"StartedAt"`
	FinishedAt string `json:"FinishedAt"`
}

// containerConfig is the part of moby's container Config that providerd
// knows: the image the container was created from.
type containerConfig struct {
	Hostname   string            `json:"Hostname"`
	Domainname string            `json:"Domainname"`
	User       string            `json:"User"`
	Env        []string          `json:"Env"`
	Cmd        []string          `json:"Cmd"`
	Image      string            `json:"Image"`
	WorkingDir string            `json:"WorkingDir"`
	Entrypoint []string          `json:"Entrypoint"`
	Labels     map[string]string `json:"Labels"`
}

type hostConfig struct {
	NetworkMode string `json:"NetworkMode"`
	Isolation   string `json:"Isolation"`
}

type graphDriver struct {
	Name string            `json:"Name"`
	Data map[string]string `json:"Data"`
}

type networkSettings struct {
	Networks map[string]any `json:"Networks"`
}

// zeroTime is how the daemon writes a time that has not happened.
const zeroTime = "0001-01-01T00:00:00Z"

// dockerTime is t as the daemon writes it, RFC 3339 in UTC.
func dockerTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// inspectContainer is `docker container inspect` (and the first try of
// `docker inspect`): GET /containers/{id}/json, by id, name or id prefix.
// A running container was started at its last state change and a stopped
// one finished then, with exit code 0; a container that was started and
// stopped again shows only when it stopped.
func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.findContainer(r.Context(), mux.Vars(r)[varID])
	if err != nil {
		return err
	}
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	byDigest := map[string]api.Image{}
	for _, img := range imgs {
		byDigest[img.Digest] = img
	}
	st := containerState{Status: dockerState(c.State), StartedAt: zeroTime, FinishedAt: zeroTime}
	switch c.State {
	case api.ContainerRunning:
		st.Running = true
		st.StartedAt = dockerTime(c.StateChanged)
	case api.ContainerStopped:
		st.FinishedAt = dockerTime(c.StateChanged)
	}
	return writeJSON(w, containerInspect{
		ID:          c.ID,
		Created:     dockerTime(c.Created),
		Args:        []string{},
		State:       st,
		Image:       c.ImageDigest,
		Name:        "/" + c.Name,
		Driver:      platformName,
		Platform:    osType,
		HostConfig:  hostConfig{NetworkMode: "none", Isolation: "process"},
		GraphDriver: graphDriver{Name: platformName, Data: map[string]string{}},
		Mounts:      []any{},
		Config: containerConfig{
			Hostname: shortID(c.ID),
			Env:      []string{},
			Image:    imageName(c, byDigest),
			Labels:   map[string]string{},
		},
		NetworkSettings: networkSettings{Networks: map[string]any{}},
	})
}
