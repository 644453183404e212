package provider

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// hostOSVersion is the Windows version of the host, major.minor.build,
// from RtlGetVersion (which, unlike GetVersionEx, is not shimmed).
func hostOSVersion() string {
	v := windows.RtlGetVersion()
	return fmt.Sprintf("%d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber)
}
