package find

import (
	"fmt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// The identifiers of the errors Find returns. They are the resource names of
// OneGet (PackageManagement), so a client can report them as the
// FullyQualifiedErrorId that Find-Package would give.
const (
	IDInvalidVersion                                          = "InvalidVersion"
	IDAllVersionsCannotBeUsedWithOtherVersionParameters       = "AllVersionsCannotBeUsedWithOtherVersionParameters"
	IDVersionRangeAndRequiredVersionCannotBeSpecifiedTogether = "VersionRangeAndRequiredVersionCannotBeSpecifiedTogether"
	IDMinimumVersionMustBeLessThanMaximumVersion              = "MinimumVersionMustBeLessThanMaximumVersion"
	IDNoMatchFoundForCriteria                                 = "NoMatchFoundForCriteria"
)

// The message formats are quoted from OneGet's own resource file,
// src/Microsoft.PowerShell.PackageManagement/resources/Messages.resx in
// github.com/OneGet/oneget, which the PackageManagement cmdlets
// (Find-Package, Get-Package, Import-PackageProvider) raise for the same
// rules. Placeholders {0}, {1} became %s verbs; the text is otherwise
// unchanged, including the missing final period of
// MinimumVersionMustBeLessThanMaximumVersion, but for two. OneGet's
// AllVersionsCannotBeUsedWithOtherVersionParameters names MinimumVersion
// and MaximumVersion too, yet AllVersions with a range is allowed here
// (every version in the range), so the text names only what is refused.
// And the second sentence
// of NoMatchFoundForCriteria ("Try Get-PackageSource to see all available
// registered package sources."): it names a cmdlet, so each client adds
// the hint of its own users, found by the error's ID (the PowerShell
// module adds OneGet's sentence), and the Docker API none.
const (
	msgInvalidVersion                                          = "The specified version '%s' is invalid. Error: '%s'."
	msgAllVersionsCannotBeUsedWithOtherVersionParameters       = "You cannot use the parameters AllVersions and RequiredVersion in the same command."
	msgVersionRangeAndRequiredVersionCannotBeSpecifiedTogether = "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command."
	msgMinimumVersionMustBeLessThanMaximumVersion              = "The specified MinimumVersion '%s' is greater than the specified MaximumVersion '%s'"
	msgNoMatchFoundForCriteria                                 = "No match was found for the specified search criteria and package name '%s'."
	// msgRequiredVersionNotFound is not OneGet's: OneGet's NoMatchFoundForCriteria
	// does not name the version, so this sentence follows it when a
	// RequiredVersion was asked for.
	msgRequiredVersionNotFound = " RequiredVersion '%s' was not found."
)

// Error is a Find error: OneGet's resource ID and its message text. Error()
// is the message alone, with no class suffix, so that servers can show
// OneGet's exact wording; errors.Is still finds the class (an
// errdefs.ErrInvalidArgument or errdefs.ErrNotFound) through Unwrap.
type Error struct {
	// ID is OneGet's resource name, e.g. "NoMatchFoundForCriteria".
	ID string
	// Message is the text with its placeholders filled.
	Message string
	class   error
}

func (e *Error) Error() string { return e.Message }

// WithNote is a copy of e whose message ends with note, e.g. why the
// answer may be incomplete.
func (e *Error) WithNote(note string) *Error {
	c := *e
	c.Message += " " + note
	return &c
}

// ErrorID is OneGet's resource name, which the API's error envelope
// carries as its id.
func (e *Error) ErrorID() string { return e.ID }

// Unwrap returns the error class.
func (e *Error) Unwrap() error { return e.class }

func invalidArgument(id, format string, args ...any) *Error {
	return &Error{ID: id, Message: fmt.Sprintf(format, args...), class: errdefs.ErrInvalidArgument}
}

// NoMatch is the errdefs.ErrNotFound error of a search for name (and
// requiredVersion, when not empty) that found nothing: OneGet's
// NoMatchFoundForCriteria text, followed by the version that was asked for.
// An empty name reads as '*'. Filter returns it; callers that resolve a name
// by other means (Install, Save) return it too, so the text is the same.
func NoMatch(name, requiredVersion string) *Error {
	if name == "" {
		name = "*"
	}
	msg := fmt.Sprintf(msgNoMatchFoundForCriteria, name)
	if requiredVersion != "" {
		msg += fmt.Sprintf(msgRequiredVersionNotFound, requiredVersion)
	}
	return &Error{ID: IDNoMatchFoundForCriteria, Message: msg, class: errdefs.ErrNotFound}
}
