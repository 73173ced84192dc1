package loadgen

import (
	"os"
	"testing"
)

// TestMain lets this test binary be the enrollment storm's server child,
// as the zester-loadgen binary is (enroll.go).
func TestMain(m *testing.M) {
	if code, ok := ServeChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestEnrollmentStorm: every simulated peel is accepted by the policy and
// the first EnrollConns connect with their own credentials, against an
// operator-mode server in a child process; the baseline ran.
func TestEnrollmentStorm(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peels, cfg.EnrollConns = 600, 250
	cfg.Scenarios = []string{ScEnrollment}
	rep := run(t, cfg)
	sc := rep.Find(ScEnrollment)
	if sc == nil || sc.Enroll == nil {
		t.Fatal("no enrollment result")
	}
	e := sc.Enroll
	if sc.Status != StatusOK || e.Accepted != 600 || e.Connected != 250 || !e.ServerChild {
		t.Fatalf("enrollment: %s %v %+v", sc.Status, sc.Notes, e)
	}
	if e.AllAccepted <= 0 || e.AllConnected <= 0 || e.BaseReqRep <= 0 || e.BaseConnect <= 0 || e.ServerCPU <= 0 {
		t.Fatalf("enrollment figures: %+v", e)
	}
}
