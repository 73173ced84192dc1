package cli_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// Without a master, or without NATS, the CLI says which, after a short
// retry (a master or server restarting), and exits 3.
func TestRun_NoMasterOrNoNATS_SaysSo(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("nats://%s", l.Addr())
	l.Close()
	for _, tc := range []struct {
		url  string
		args []string
		want []string
	}{
		{url, []string{"run", "*", "test.ping"}, []string{"no master answers on zester.api.info (via server single at " + url, "tried for 5s: is zester-master running?"}},
		{url, []string{"job", "wait", "20260101000000000000" + "00"}, []string{"bucket jobs does not exist (zester-master creates the buckets", "stream not found"}},
		{dead, []string{"run", "*", "test.ping"}, []string{"connect to NATS at " + dead, "no servers available", "attempts over"}},
	} {
		start := time.Now()
		code, out, errOut := clitest.Zester(t, tc.url, tc.args...)
		took := time.Since(start)
		if code != 3 {
			t.Errorf("%q: exit %d, want 3\n%s\n%s", tc.args, code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
		t.Logf("%q against %s: exit %d after %s: %s", tc.args, tc.url, code, took.Round(time.Millisecond), strings.TrimSpace(errOut))
	}
}

// Through a 3-node cluster with R3 buckets, two masters and two real
// peels: the JetStream meta leader stopped as `zester run` starts, the
// returns stream's leader stopped before `zester job wait`, and the
// quorum lost (two of three nodes down) while `job wait` and `run` start;
// every command waits the outage out and succeeds.
func TestCLI_ClusterLeaderAndQuorumLoss_CommandsSucceed(t *testing.T) {
	tp := testkit.Topology(t, "cluster", topology.Options{})
	ready := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := tp.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	urls := tp.HubURLs()
	url := strings.Join(urls, ",")
	for _, id := range []string{"m1", "m2"} {
		cfg := mastertest.Config(id, urls...)
		cfg.NATS.Replicas = tp.Replicas()
		mastertest.Start(t, cfg)
	}
	for _, id := range []string{"p1.example.com", "p2.example.com"} {
		peeltest.Start(t, peeltest.Config(t, id, urls...))
	}
	leader := func(isLeader func(i int) bool) int {
		t.Helper()
		var at int
		testkit.Eventually(t, "a leader", 60*time.Second, func() bool {
			for i := range tp.Servers() {
				if isLeader(i) {
					at = i
					return true
				}
			}
			return false
		})
		return at
	}
	metaLeader := func(i int) bool { return tp.Servers()[i].NATS().JetStreamIsLeader() }
	returnsLeader := func(i int) bool {
		return tp.Servers()[i].NATS().JetStreamIsStreamLeader("$G", "KV_job-returns")
	}
	bothAnswered := func(out string) bool {
		return strings.Count(out, "retcode 0") == 2 && strings.Count(out, "    ok") == 2
	}

	t.Run("meta leader stopped as run starts", func(t *testing.T) {
		i := leader(metaLeader)
		if err := tp.StopServer(i); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := clitest.Zester(t, url, "run", "-t", "60s", "*", "cmd.run", "sleep 1; echo ok")
		if code != 0 || !bothAnswered(out) {
			t.Fatalf("run with server %d (meta leader) stopped: exit %d\n%s\n%s", i, code, out, errOut)
		}
		t.Logf("server %d (meta leader) stopped: run exit 0; stderr %q", i, errOut)
		if err := tp.RestartServer(i); err != nil {
			t.Fatal(err)
		}
		ready()
	})

	t.Run("returns stream leader stopped before job wait", func(t *testing.T) {
		code, out, errOut := clitest.Zester(t, url, "run", "--async", "-t", "60s", "*", "cmd.run", "sleep 2; echo ok")
		jid := strings.TrimSpace(out)
		if code != 0 || len(jid) != 22 {
			t.Fatalf("async: %d %q %s", code, out, errOut)
		}
		i := leader(returnsLeader)
		if err := tp.StopServer(i); err != nil {
			t.Fatal(err)
		}
		code, out, errOut = clitest.Zester(t, url, "job", "wait", "-t", "90s", jid)
		if code != 0 || !strings.Contains(out, "done") {
			t.Fatalf("job wait with server %d (returns leader) stopped: exit %d\n%s\n%s", i, code, out, errOut)
		}
		t.Logf("server %d (returns leader) stopped: job wait exit 0; stderr %q", i, errOut)
		if err := tp.RestartServer(i); err != nil {
			t.Fatal(err)
		}
		ready()
	})

	// Two of three nodes down: JetStream has no quorum, and every bucket
	// read times out until they are back. The commands start during the
	// outage, announce their retry on stderr (that is what the test waits
	// for, not a time), and finish once the nodes return.
	outage := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		for _, i := range []int{1, 2} {
			if err := tp.StopServer(i); err != nil {
				t.Fatal(err)
			}
		}
		r := clitest.Start(url, args...)
		testkit.Eventually(t, "the CLI retrying", 90*time.Second, func() bool {
			select {
			case <-r.Done():
				return true
			default:
			}
			for _, l := range strings.Split(r.Err.String(), "\n") {
				// A JetStream step (a bucket, the job's record), not
				// the connection or a master's answer.
				if strings.Contains(l, "retrying for up to") && !strings.Contains(l, "connect to NATS") && !strings.Contains(l, "ask a master") {
					return true
				}
			}
			return false
		})
		for _, i := range []int{1, 2} {
			if err := tp.RestartServer(i); err != nil {
				t.Fatal(err)
			}
		}
		code := r.Wait(t, 180*time.Second)
		ready()
		return code, r.Out.String(), r.Err.String()
	}

	t.Run("quorum lost before job wait", func(t *testing.T) {
		code, out, errOut := clitest.Zester(t, url, "run", "--json", "-t", "30s", "*", "test.ping")
		if code != 0 {
			t.Fatalf("run: %d %s %s", code, out, errOut)
		}
		jid := clitest.LastSummary(t, out).Summary.JID
		code, out, errOut = outage(t, "job", "wait", "-t", "120s", jid)
		if code != 0 || !strings.Contains(out, "done") || !strings.Contains(errOut, "retrying for up to") {
			t.Fatalf("job wait through the outage: exit %d\n%s\n%s", code, out, errOut)
		}
		t.Logf("job wait through the outage: exit 0; stderr %q", errOut)
	})

	t.Run("quorum lost before run", func(t *testing.T) {
		code, out, errOut := outage(t, "run", "-t", "120s", "*", "cmd.run", "echo ok")
		if code != 0 || !bothAnswered(out) || !strings.Contains(errOut, "retrying for up to") {
			t.Fatalf("run through the outage: exit %d\n%s\n%s", code, out, errOut)
		}
		t.Logf("run through the outage: exit 0; stderr %q", errOut)
	})
}

// A replica of the jobs bucket that lags behind its stream leader (here a
// mirror holding one other job: testkit.LaggingReplica) answers about half
// the direct gets, with "not found". job show and job wait read a recorded
// job all the same, every time: a not-found is asked of the stream leader.
func TestJobShowWait_LaggingReplica_FindsJob(t *testing.T) {
	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	peeltest.Start(t, peeltest.Config(t, "web1", url))
	var jids []string
	for range 2 {
		code, out, errOut := clitest.Zester(t, url, "run", "--json", "-t", "30s", "web1", "test.ping")
		if code != 0 {
			t.Fatalf("run: %d %s %s", code, out, errOut)
		}
		jids = append(jids, clitest.LastSummary(t, out).Summary.JID)
	}
	_, js := testkit.ConnectJS(t, url)
	kv, err := js.KeyValue(context.Background(), names.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	testkit.LaggingReplica(t, js, kv, names.JobKey(jids[0]), names.JobKey(jids[1]))
	// Without the leader's word, each command fails with probability ~1/2:
	// 12 runs all succeed by chance once in 4,096.
	for i := range 6 {
		for _, tc := range []struct {
			args []string
			want string // the return (show) or the status (wait)
		}{
			{[]string{"job", "show", jids[1]}, "web1"},
			{[]string{"job", "wait", "-t", "30s", jids[1]}, "done"},
		} {
			args := tc.args
			code, out, errOut := clitest.Zester(t, url, args...)
			if code != 0 || !strings.Contains(out, jids[1]) || !strings.Contains(out, tc.want) {
				t.Fatalf("%q (try %d) through a lagging replica: exit %d\n%s\n%s", args, i, code, out, errOut)
			}
		}
	}
}
