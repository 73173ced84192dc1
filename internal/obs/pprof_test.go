package obs

import (
	"net/http"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The profiles are served only with ZESTER_PPROF=1 (no /readyz asked: no
// ready func).
func TestListenHTTP_PprofOnlyWhenAsked(t *testing.T) {
	for _, env := range []string{"", "0", "1"} {
		want := http.StatusNotFound
		if env == "1" {
			want = http.StatusOK
		}
		t.Run("ZESTER_PPROF="+env, func(t *testing.T) {
			t.Setenv(EnvPprof, env)
			h, err := ListenHTTP("127.0.0.1:0", metrics.NewSet(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			resp, err := http.Get("http://" + h.Addr() + "/debug/pprof/cmdline")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("/debug/pprof/cmdline: %d, want %d", resp.StatusCode, want)
			}
		})
	}
}
