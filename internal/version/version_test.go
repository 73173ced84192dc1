package version

import (
	"regexp"
	"strings"
	"testing"
)

// The master's API (nats.go micro) refuses a version that is not SemVer;
// whatever String returns must pass once a Go "v" prefix is dropped.
func TestString_IsSemVerWithoutV(t *testing.T) {
	semver := regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)
	for _, v := range []string{String(), "v0.0.0-20261126090838-46f283ee6ff1", "v1.2.3", "v0.0.0-20261126090838-46f283ee6ff1+dirty"} {
		if s := strings.TrimPrefix(v, "v"); !semver.MatchString(s) {
			t.Errorf("%q is not SemVer", s)
		}
	}
}
