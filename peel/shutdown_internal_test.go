package peel

import (
	"testing"
	"time"

	"github.com/zester-io/zester/internal/daemon"
)

// TestShutdownBudget_InsideGrace: the peel's stop (goodbye flush, running
// jobs, connection drain) fits in the grace period the daemon lifecycle
// gives it before the process exits anyway, so the returns of jobs that
// finish in time are flushed rather than cut off.
func TestShutdownBudget_InsideGrace(t *testing.T) {
	const byeFlush = time.Second // bye's FlushTimeout
	if total := byeFlush + jobsWait + drainWait; total >= daemon.Grace {
		t.Fatalf("the peel's stop takes up to %s, not inside daemon.Grace (%s)", total, daemon.Grace)
	}
}
