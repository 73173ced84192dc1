package target

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSlowCorpus(t *testing.T) {
	dir := os.Getenv("CORPUS")
	if dir == "" {
		t.Skip()
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	subs := fuzzSubjects()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var kind Kind = KindCompound
		var expr string
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "string(") {
				expr, _ = strconv.Unquote(l[7 : len(l)-1])
			} else if strings.HasPrefix(l, "byte(") {
				s, _ := strconv.Unquote(l[5 : len(l)-1])
				if len(s) > 0 {
					kind = fuzzKinds[int(s[0])%len(fuzzKinds)]
				}
			}
		}
		st := time.Now()
		e, err := Parse(kind, expr, Options{Nodegroups: fuzzGroups})
		if err == nil {
			checkRoundTrip(t, subs, expr, e)
		}
		if d := time.Since(st); d > 50*time.Millisecond {
			t.Logf("%s: %v kind %s len %d %q", filepath.Base(f), d, kind, len(expr), expr[:min(len(expr), 200)])
		}
	}
}
