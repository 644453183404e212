package docker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	goversion "github.com/hashicorp/go-version"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// handlerFunc is a Docker API handler. It writes the response on success
// and returns an error otherwise, which writeError turns into Docker's
// {"message": "..."}.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// dockerError is an error whose text is Docker's own wording (the CLI
// prints it after "Error response from daemon: "), with an errdefs class
// for the status.
type dockerError struct {
	msg   string
	class error
}

func (e *dockerError) Error() string { return e.msg }
func (e *dockerError) Unwrap() error { return e.class }

// newError is an error of class whose message is msg, as is.
func newError(class error, format string, args ...any) error {
	return &dockerError{msg: fmt.Sprintf(format, args...), class: class}
}

// errUnsupported is the error of every request outside the subset.
func errUnsupported(r *http.Request) error {
	return newError(errdefs.ErrNotImplemented, "%s %s is not supported by providerd", r.Method, r.URL.Path)
}

// errorResponse is moby's ErrorResponse.
type errorResponse struct {
	Message string `json:"message"`
}

// writeError is the one place where an error becomes a response: the
// status of errdefs.HTTPStatus, the body {"message": ...}. An error of no
// class (a 500) gets a generic message with the request id, since its text
// may name server paths; the log line has the real one. When the response
// has already started (a pull stream), only the log remains.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	middleware.SetError(r.Context(), err)
	if middleware.HeaderWritten(w) {
		return
	}
	status := errdefs.HTTPStatus(err)
	// Without its class, as API v1 says it: docker's own errors have none.
	msg := withoutClientHints(api.ErrorMessage(err))
	if status == http.StatusInternalServerError {
		msg = fmt.Sprintf("internal server error (request id %s)", middleware.RequestID(r.Context()))
	}
	body, _ := marshal(errorResponse{Message: msg}) // a string always encodes
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// clientHint matches what names a command of the provider's other
// clients: a cmdlet of the ContainerImage module or of PackageManagement
// (Get-PackageSource, Remove-ContainerImage) or a cimage command.
var clientHint = regexp.MustCompile(`\b[A-Z][a-z]+-(?:Container|Package)[A-Za-z]*\b|\bcimage [a-z]`)

// withoutClientHints drops from msg the sentences after the first that
// name a cmdlet or a cimage command ("Try Get-PackageSource to see all
// available registered package sources."): a docker user has neither.
func withoutClientHints(msg string) string {
	parts := strings.SplitAfter(msg, ". ")
	out := parts[0]
	for _, p := range parts[1:] {
		if !clientHint.MatchString(p) {
			out += p
		}
	}
	return strings.TrimRight(out, " ")
}

// marshal encodes v as JSON followed by a newline, without escaping <, >
// and & (the CLI prints "<none>" and "<missing>").
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON writes v with status 200.
func writeJSON(w http.ResponseWriter, v any) error {
	return writeJSONStatus(w, http.StatusOK, v)
}

// writeStatus writes a response without a body.
func writeStatus(w http.ResponseWriter, status int) error {
	w.WriteHeader(status)
	return nil
}

// writeJSONStatus writes v with status.
func writeJSONStatus(w http.ResponseWriter, status int, v any) error {
	body, err := marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

var (
	maxVersion = goversion.Must(goversion.NewVersion(APIVersion))
	minVersion = goversion.Must(goversion.NewVersion(MinAPIVersion))
)

// checkVersion refuses a versioned path outside [MinAPIVersion,
// APIVersion], with the daemon's wording.
func checkVersion(r *http.Request) error {
	v, ok := mux.Vars(r)[varVersion]
	if !ok {
		return nil
	}
	pv, err := goversion.NewVersion(v)
	if err != nil {
		return newError(errdefs.ErrInvalidArgument, "invalid API version %q", v)
	}
	if pv.GreaterThan(maxVersion) {
		return newError(errdefs.ErrInvalidArgument, "client version %s is too new. Maximum supported API version is %s", v, APIVersion)
	}
	if pv.LessThan(minVersion) {
		return newError(errdefs.ErrInvalidArgument, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)
	}
	return nil
}

// adapt turns a method-to-handler table into an http.Handler whose errors
// go through writeError.
func (s *Server) adapt(byMethod map[string]handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := byMethod[r.Method]
		if !ok {
			s.writeError(w, r, errUnsupported(r))
			return
		}
		if err := checkVersion(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// handlers is the handler of each method of each route, by route name.
func (s *Server) handlers() map[string]map[string]handlerFunc {
	return map[string]map[string]handlerFunc{
		RoutePing:             {http.MethodGet: s.ping, http.MethodHead: s.ping},
		RouteVersion:          {http.MethodGet: s.version},
		RouteInfo:             {http.MethodGet: s.info},
		RouteImages:           {http.MethodGet: s.listImages},
		RouteImageSearch:      {http.MethodGet: s.searchImages},
		RouteImageCreate:      {http.MethodPost: s.pullImage},
		RouteImagesSave:       {http.MethodGet: s.saveImages},
		RouteImageSave:        {http.MethodGet: s.saveImages},
		RouteImagesLoad:       {http.MethodPost: s.loadImages},
		RouteImageInspect:     {http.MethodGet: s.inspectImage},
		RouteImageHistory:     {http.MethodGet: s.imageHistory},
		RouteImageTag:         {http.MethodPost: s.tagImage},
		RouteImageDelete:      {http.MethodDelete: s.deleteImage},
		RouteContainerCreate:  {http.MethodPost: s.createContainer},
		RouteContainers:       {http.MethodGet: s.listContainers},
		RouteContainerInspect: {http.MethodGet: s.inspectContainer},
		RouteContainerArchive: {http.MethodHead: s.statContainerPath, http.MethodPut: s.copyToContainer},
		RouteContainerAttach:  {http.MethodPost: s.attachContainer},
		RouteContainerStart:   {http.MethodPost: s.startContainer},
		RouteContainerStop:    {http.MethodPost: s.stopContainer},
		RouteContainerDelete:  {http.MethodDelete: s.removeContainer},
		RouteCommit:           {http.MethodPost: s.commit},
	}
}

// attachHandlers attaches the handlers to both routes of each table line,
// and checks that each method of the table has one.
func (s *Server) attachHandlers() error {
	all := s.handlers()
	for _, rt := range routes {
		byMethod, ok := all[rt.name]
		if !ok {
			return fmt.Errorf("route %s has no handlers", rt.name)
		}
		for _, m := range rt.methods {
			if byMethod[m] == nil {
				return fmt.Errorf("route %s: no handler for %s", rt.name, m)
			}
		}
		h := s.adapt(byMethod)
		s.router.Get(rt.name).Handler(h)
		s.router.Get(versioned(rt.name)).Handler(h)
	}
	return nil
}
