package cli_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/peeltest"
)

// Targets that select nothing, or name ids no peel has, say so and exit 2;
// --out json is --json.
func TestRun_Targets_NoMatchUnknownIDsAndOutJSON(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1", url))
	peeltest.Start(t, peeltest.Config(t, "web2", url))

	for _, tc := range []struct {
		args    []string
		code    int
		stdout  string
		stderr  string
		unknown []string
	}{
		{args: []string{"nosuchhost", "test.ping"}, code: 2, stderr: "no peels matched nosuchhost"},
		{args: []string{"-G", "os:id:nosuchos", "test.ping"}, code: 2, stderr: "no peels matched -G os:id:nosuchos"},
		{args: []string{"-E", "db.*", "test.ping"}, code: 2, stderr: "no peels matched -E 'db.*'"},
		{args: []string{"-L", "web1,ghost1,ghost2", "test.ping"}, code: 2, stdout: "web1: true", stderr: "no peel has the id ghost1, ghost2"},
		{args: []string{"--json", "-L", "web1,ghost1", "test.ping"}, code: 2, unknown: []string{"ghost1"}},
		{args: []string{"-L", "web1,web2", "test.ping"}, code: 0, stdout: "web2: true"},
		{args: []string{"web*", "test.ping"}, code: 0, stdout: "web1: true"},
	} {
		code, out, errOut := clitest.Zester(t, url, append([]string{"run", "--timeout", "10s"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("run %q: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, out, errOut)
			continue
		}
		if tc.unknown != nil {
			if got := clitest.LastSummary(t, out).Summary.Unknown; !slices.Equal(got, tc.unknown) {
				t.Errorf("run %q: JSON unknown = %q, want %q", tc.args, got, tc.unknown)
			}
		}
		if tc.code == 0 && errOut != "" {
			t.Errorf("run %q: stderr %q", tc.args, errOut)
		}
	}

	// Salt's --out json, in both spellings and anywhere on the line.
	for _, args := range [][]string{
		{"run", "--out", "json", "-L", "web1", "test.ping"},
		{"run", "-L", "web1", "test.ping", "--out=json"},
		{"--out", "json", "run", "-L", "web1", "test.ping"},
	} {
		code, out, errOut := clitest.Zester(t, url, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d %s %s", args, code, out, errOut)
		}
		var r wire.Return
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &r); err != nil || r.Peel != "web1" {
			t.Errorf("%q: first line is not a JSON return: %q (%v)", args, out, err)
		}
		if clitest.LastSummary(t, out).Summary.Returned != 1 {
			t.Errorf("%q: summary %q", args, out)
		}
	}
	code, out, _ := clitest.Zester(t, url, "job", "list", "--out", "json")
	var jobs []wire.Job
	if code != 0 || json.Unmarshal([]byte(out), &jobs) != nil || len(jobs) == 0 {
		t.Errorf("job list --out json: exit %d %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--out", "yaml", "*", "test.ping"}, `--out "yaml": zester prints a table (the default) or JSON (--out json`},
		{[]string{"run", "--out=", "*", "test.ping"}, `--out "": zester prints a table`},
		{[]string{"version", "--out", "json"}, `"zester version" has no JSON output`},
	} {
		if code, _, errOut := clitest.Zester(t, url, tc.args...); code != 3 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 3 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// Salt's habit, `salt '*' test.ping` typed as zester, gets the command to
// type instead; it needs no server.
func TestMain_SaltHabit_SaysWhatToType(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"*", "test.ping"}, "type:\n  zester run '*' test.ping\n"},
		{[]string{"--nats", "nats://127.0.0.1:1", "web*", "cmd.run", "echo hi", "--out", "json"}, "  zester --nats nats://127.0.0.1:1 run 'web*' cmd.run 'echo hi' --out json\n"},
		{[]string{"-L", "web1,web2", "test.ping"}, "zester run -L web1,web2 test.ping"},
	} {
		var out, errb strings.Builder
		code := cli.Main(tc.args, &out, &errb)
		if code != 3 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "is not a zester command") {
			t.Errorf("%q: exit %d, stderr %q; want 3 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	// A real command, or one unknown word, is not taken for a target.
	var out, errb strings.Builder
	if code := cli.Main([]string{"nosuchcommand"}, &out, &errb); code != 3 || strings.Contains(errb.String(), "zester run") {
		t.Errorf("one unknown word: exit %d %q", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := cli.Main([]string{"help", "run"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Run a function") {
		t.Errorf("help run: exit %d %q %q", code, out.String(), errb.String())
	}
}

// A job whose returns were purged (the seed's `nats stream purge
// KV_job-returns --keep 0`, here `zester purge job-returns --all`) shows
// the job record's final status and how many returns are gone, with the
// exit code the record gives.
func TestJobShowWait_ReturnsPurged_ShowsRecord(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1", url))
	peeltest.Start(t, peeltest.Config(t, "web2", url))

	code, out, errOut := clitest.Zester(t, url, "run", "--json", "-t", "10s", "*", "test.ping")
	if code != 0 {
		t.Fatalf("run: %d %s %s", code, out, errOut)
	}
	okJID := clitest.LastSummary(t, out).Summary.JID
	code, out, errOut = clitest.Zester(t, url, "run", "--json", "-t", "10s", "web1", "cmd.run", "exit 3")
	if code != 1 {
		t.Fatalf("run exit 3: %d %s %s", code, out, errOut)
	}
	failedJID := clitest.LastSummary(t, out).Summary.JID

	if code, out, errOut := clitest.Zester(t, url, "purge", "job-returns", "--all", "-y"); code != 0 {
		t.Fatalf("purge: %d %s %s", code, out, errOut)
	}
	st, err := testkit.JetStream(t, url).Stream(context.Background(), names.KVStream(names.BucketJobReturns))
	if err != nil || st.CachedInfo().State.Msgs != 0 {
		t.Fatalf("returns not purged: %v %+v", err, st)
	}

	for _, tc := range []struct {
		cmd, jid string
		code     int
		want     []string
	}{
		{"show", okJID, 0, []string{"done", "2 of 2 returns are no longer stored", "counted 2 returned, 0 failed"}},
		{"wait", okJID, 0, []string{"done", "2 of 2 returns are no longer stored"}},
		{"show", failedJID, 1, []string{"done", "1 of 1 returns are no longer stored", "counted 1 returned, 1 failed"}},
		{"wait", failedJID, 1, []string{"1 of 1 returns are no longer stored"}},
	} {
		code, out, errOut := clitest.Zester(t, url, "job", tc.cmd, tc.jid)
		if code != tc.code {
			t.Errorf("job %s %s: exit %d, want %d\n%s\n%s", tc.cmd, tc.jid, code, tc.code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("job %s %s: output lacks %q:\n%s", tc.cmd, tc.jid, w, out)
			}
		}
	}
	code, out, _ = clitest.Zester(t, url, "job", "wait", "--json", okJID)
	if sum := clitest.LastSummary(t, out).Summary; code != 0 || sum.Status != wire.StatusDone || sum.Returned != 2 || sum.NotStored != 2 || len(sum.Missing) != 0 {
		t.Errorf("job wait --json: exit %d %s", code, out)
	}
	// An id with no record is an error, for wait as for show.
	for _, cmd := range []string{"show", "wait"} {
		if code, _, errOut := clitest.Zester(t, url, "job", cmd, "20000101000000000000"+"00"); code != 3 || !strings.Contains(errOut, "no job") {
			t.Errorf("job %s of an unknown jid: exit %d %q", cmd, code, errOut)
		}
	}
}

// A peel that finishes after the deadline stores its real result, marked
// late, and is listed once, as late: not as failed and not as missing.
func TestJobShow_LateReturn_OneCategoryLate(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	release := make(chan struct{})
	reg := funcs.NewRegistry()
	// test.block ignores its context, as a function stuck in a system call
	// would, and returns once released.
	reg.Register("test.block", func(ctx context.Context, env *funcs.Env, _ json.RawMessage) (any, error) {
		if env.PeelID == "slow" {
			<-release
			return "released", nil
		}
		return "quick", nil
	})
	for _, id := range []string{"slow", "quick"} {
		peeltest.StartWith(t, peeltest.Config(t, id, url), peel.Options{Registry: reg})
	}

	code, out, errOut := clitest.Zester(t, url, "run", "--json", "-t", "2s", "*", "test.block")
	sum := clitest.LastSummary(t, out).Summary
	if code != 2 || !slices.Equal(sum.Missing, []string{"slow"}) || sum.Returned != 1 {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, errOut)
	}
	jid := sum.JID
	close(release)

	kv, err := testkit.JetStream(t, url).KeyValue(context.Background(), names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	var ret wire.Return
	testkit.Eventually(t, "late return stored", 30*time.Second, func() bool {
		var err error
		ret, err = testkit.GetJSON[wire.Return](kv, names.ReturnKey(jid, "slow"))
		return err == nil
	})
	if !ret.Late || !ret.Success || string(ret.Result) != `"released"` || ret.Error != nil {
		t.Fatalf("stored return is not the real result marked late: %+v", ret)
	}

	code, out, errOut = clitest.Zester(t, url, "job", "show", jid)
	if code != 2 || !strings.Contains(out, `slow (late): "released"`) || !strings.Contains(out, "late (answered after the deadline): slow") ||
		strings.Contains(out, "did not answer") || strings.Contains(out, "failed:") || strings.Count(out, "slow") != 2 {
		t.Fatalf("job show: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = clitest.Zester(t, url, "job", "show", "--json", jid)
	sum = clitest.LastSummary(t, out).Summary
	if code != 2 || !slices.Equal(sum.Late, []string{"slow"}) || len(sum.Missing) != 0 || len(sum.Failed) != 0 || sum.Returned != 1 {
		t.Fatalf("job show --json: exit %d\n%s", code, out)
	}
}
