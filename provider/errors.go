package provider

import (
	"fmt"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// DependentsError refuses the removal of an image that other images or
// containers depend on. Its class is Conflict.
type DependentsError struct {
	// Image names the image that cannot be removed, "Name version".
	Image string
	// Dependents name what depends on it: "image microsoft/iis 1.0.0.0",
	// "container web1".
	Dependents []string
}

func (e *DependentsError) Error() string {
	verb := "depend"
	if len(e.Dependents) == 1 {
		verb = "depends"
	}
	return fmt.Sprintf("image %s cannot be removed: %s %s on it", e.Image, strings.Join(e.Dependents, ", "), verb)
}

// Unwrap gives the error its class.
func (e *DependentsError) Unwrap() error { return errdefs.ErrConflict }

// MatchesError refuses a removal by name that selects more than one
// image without RemoveOptions.Force, which is PowerShell's
// ConfirmImpact=High for Remove-ContainerImage. Its class is Conflict.
type MatchesError struct {
	// Name is the name (or pattern) given.
	Name string
	// Matches are the images it selects, in the listing's order.
	Matches []api.Image
}

func (e *MatchesError) Error() string {
	labels := make([]string, len(e.Matches))
	for i, m := range e.Matches {
		labels[i] = m.Name + " " + m.Version
	}
	return fmt.Sprintf("%q matches %d installed images (%s): nothing removed; force the removal to remove them all, or name one version",
		e.Name, len(e.Matches), strings.Join(labels, ", "))
}

// Unwrap gives the error its class.
func (e *MatchesError) Unwrap() error { return errdefs.ErrConflict }
