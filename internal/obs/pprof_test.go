package obs

import (
	"context"
	"net/http"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// The profiles are served only with ZESTER_PPROF=1.
func TestListenHTTP_PprofOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{{"", http.StatusNotFound}, {"0", http.StatusNotFound}, {"1", http.StatusOK}} {
		t.Run("ZESTER_PPROF="+tc.env, func(t *testing.T) {
			t.Setenv(EnvPprof, tc.env)
			h, err := ListenHTTP("127.0.0.1:0", metrics.NewSet(), func(context.Context) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			resp, err := http.Get("http://" + h.Addr() + "/debug/pprof/cmdline")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("/debug/pprof/cmdline: %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
