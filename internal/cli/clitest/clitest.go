// Package clitest runs the zester CLI in process for tests, as the binary
// would (cli.Main), against a NATS URL: in the foreground, in the background
// with outputs readable while it runs, and with the JSON it prints decoded.
// It is the one CLI runner of the tests of internal/cli, master/ and
// internal/e2e.
package clitest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/syncio"
	"github.com/zester-io/zester/internal/wire"
)

// Zester runs `zester --nats url args...` and returns its exit code and
// outputs.
func Zester(t testing.TB, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(append([]string{"--nats", url}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// Run is a CLI invocation running in the background; Out and Err may be
// read while it runs.
type Run struct {
	Out, Err syncio.Buffer
	code     int
	done     chan struct{}
}

// Start runs `zester --nats url args...` in the background.
func Start(url string, args ...string) *Run {
	r := &Run{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.code = cli.Main(append([]string{"--nats", url}, args...), &r.Out, &r.Err)
	}()
	return r
}

// Done is closed when the run has returned.
func (r *Run) Done() <-chan struct{} { return r.done }

// Wait returns the exit code; within is a hang guard.
func (r *Run) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(within):
		t.Fatalf("zester still running after %s\nstdout:\n%s\nstderr:\n%s", within, r.Out.String(), r.Err.String())
		return 0
	}
}

// Summary is the last line of `zester run --json` output.
type Summary struct {
	Summary struct {
		JID       string   `json:"jid"`
		Status    string   `json:"status"`
		Expected  int      `json:"expected"`
		Returned  int      `json:"returned"`
		Failed    []string `json:"failed"`
		Missing   []string `json:"missing"`
		Offline   []string `json:"offline"`
		Late      []string `json:"late"`
		NotStored int      `json:"not_stored"`
		Unknown   []string `json:"unknown"`
	} `json:"summary"`
}

// LastSummary decodes the summary line of --json output, failing the test
// when there is none.
func LastSummary(t testing.TB, out string) Summary {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace([]byte(out)), []byte("\n"))
	var s Summary
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil || s.Summary.JID == "" {
		t.Fatalf("no JSON summary in %q: %v", out, err)
	}
	return s
}

// Peels is `zester peels --json [flags]` by peel id.
func Peels(t testing.TB, url string, flags ...string) map[string]wire.PeelSummary {
	t.Helper()
	code, out, errOut := Zester(t, url, append([]string{"peels", "--json"}, flags...)...)
	if code != 0 {
		t.Fatalf("peels --json %v: exit %d\n%s%s", flags, code, out, errOut)
	}
	var rows []wire.PeelSummary
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("peels --json: %v\n%s", err, out)
	}
	m := map[string]wire.PeelSummary{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

// PeelState is the presence state `zester peels` shows for id ("" when it
// lists no such peel).
func PeelState(t testing.TB, url, id string) string {
	t.Helper()
	return Peels(t, url)[id].State
}
