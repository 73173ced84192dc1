// Package version is the one version of every Zester binary. Release builds
// set it with -ldflags "-X github.com/zester-io/zester/internal/version.Version=1.2.3".
package version

import "runtime/debug"

// Version is the release; "" means a development build.
var Version = ""

// String is the version to report.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}
