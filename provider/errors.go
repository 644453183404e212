package provider

import (
	"fmt"
	"strings"

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
