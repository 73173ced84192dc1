package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/peel/state/mod"
)

// zesterCLI runs the CLI in-process against url.
func zesterCLI(url string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(append([]string{"--nats", url}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// startScheduledPeel runs a real peel with its schedule and, when reg is
// not nil, its own registry.
func startScheduledPeel(t *testing.T, cfg peel.Config, reg *funcs.Registry) (*peel.Peel, func()) {
	t.Helper()
	p, err := peel.New(cfg, peel.Options{Logger: testkit.Logger().With("peel", cfg.ID), NoHTTP: true, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() { p.Run(ctx); close(exited) }()
	stop := func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("peel %s did not stop", cfg.ID)
		}
	}
	t.Cleanup(stop)
	waitUntil(t, "peel "+cfg.ID+" ready", p.Ready)
	return p, stop
}

// waitUntil waits on an observable condition; 60 s is a hang guard.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, 60*time.Second, cond)
}

// scheduleEvents reads every stored event of one entry of one peel, oldest
// first.
func scheduleEvents(t *testing.T, js jetstream.JetStream, subject string) []wire.ScheduleEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, names.StreamJobEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []wire.ScheduleEvent
	for n := info.NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", subject, err)
		}
		var ev wire.ScheduleEvent
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatalf("%s: %v: %s", subject, err, m.Data())
		}
		out = append(out, ev)
	}
	return out
}

// motdState is a small real state function for the drift test (the state
// engine's state.apply is another helper's work): it makes path hold one
// line and returns Salt's state return, with changes only when it had to
// write.
func motdState(path string) funcs.Func {
	return func(ctx context.Context, env *funcs.Env, args json.RawMessage) (any, error) {
		const want = "managed by zester\n"
		r := mod.Run{Result: mod.Result{Name: path, Comment: "File " + path + " is in the correct state"}, ID: "motd", SLS: "base", StartTime: time.Now().Format("15:04:05.000000")}
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				return nil, err
			}
			r.Changes = map[string]any{"diff": fmt.Sprintf("-%s+%s", b, want)}
			r.Comment = "File " + path + " updated"
		}
		return map[string]mod.Run{mod.RunKey("file", "motd", path, "managed"): r}, nil
	}
}

// growState is a state function that always changes something: it appends
// a line to path, so every run of it is drift.
func growState(path string) funcs.Func {
	return func(ctx context.Context, env *funcs.Env, args json.RawMessage) (any, error) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if _, err := f.WriteString("run\n"); err != nil {
			return nil, err
		}
		r := mod.Run{Result: mod.Result{Name: path, Comment: "Appended a line", Changes: map[string]any{"diff": "+run"}}, ID: "grow", SLS: "base"}
		return map[string]mod.Run{mod.RunKey("file", "grow", path, "append"): r}, nil
	}
}

// A peel's schedule end to end: entries at 200 ms without splay run on
// their own, each run publishes its event on job-events, and `zester run
// --scheduled` shows each peel's latest one as run output (state returns
// in the state output, with the drift), failed and offline peels as such;
// a run longer than its interval skips the periods it overlaps.
func TestSchedule_RunsPublishesShowsLatest(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	motd := filepath.Join(t.TempDir(), "motd")
	reg := funcs.NewRegistry()
	reg.Register("state.apply", motdState(motd))
	reg.Register("state.sls", growState(filepath.Join(t.TempDir(), "grow")))

	cfg := peeltest.Config(t, "web1.example.com", url)
	var err error
	cfg.Schedule, err = peel.ParseSchedule("test", []byte(`
echo: {function: test.echo, args: {text: hello}, interval: 200ms}
slow: {function: test.sleep, args: {seconds: 1}, interval: 200ms}
broken: {function: cmd.run, args: ["echo oops; exit 3"], interval: 1h}
motd: {function: state.apply, interval: 200ms}
grow: {function: state.sls, interval: 200ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := startScheduledPeel(t, cfg, reg)
	cfg2 := peeltest.Config(t, "web2", url)
	cfg2.Schedule, _ = peel.ParseSchedule("test", []byte("echo: {function: test.echo, args: [from web2], interval: 200ms}\n"))
	_, stop2 := startScheduledPeel(t, cfg2, nil)

	_, js := testkit.ConnectJS(t, url)
	subj := func(id, entry string) string { return names.ScheduleEventSubject(id, entry) }
	waitUntil(t, "three echo runs", func() bool { return len(scheduleEvents(t, js, subj(p1.ID(), "echo"))) >= 3 })
	waitUntil(t, "two slow runs", func() bool { return len(scheduleEvents(t, js, subj(p1.ID(), "slow"))) >= 2 })
	waitUntil(t, "web2 ran", func() bool { return len(scheduleEvents(t, js, subj("web2", "echo"))) >= 1 })

	echo := scheduleEvents(t, js, subj(p1.ID(), "echo"))
	for i, ev := range echo {
		if ev.Peel != p1.ID() || ev.Entry != "echo" || ev.Function != "test.echo" || !ev.Success || ev.Return == nil || string(ev.Return.Result) != `"hello"` || ev.States != nil {
			t.Fatalf("echo event %d: %+v", i, ev)
		}
		if i > 0 && !ev.Started.After(echo[i-1].Started) {
			t.Errorf("echo runs not in order: %s then %s", echo[i-1].Started, ev.Started)
		}
	}
	// One run of an entry at a time: each slow run starts after the
	// previous ended, and says how many 200 ms periods it overlapped.
	slow := scheduleEvents(t, js, subj(p1.ID(), "slow"))
	for i, ev := range slow {
		if !ev.Success || ev.Duration.D() < time.Second || ev.Skipped < 3 {
			t.Errorf("slow run %d: success %v, took %s, skipped %d: want a 1 s run that skipped the periods it overlapped", i, ev.Success, ev.Duration.D(), ev.Skipped)
		}
		if i > 0 {
			if end := slow[i-1].Started.Add(slow[i-1].Duration.D()); ev.Started.Before(end) {
				t.Errorf("slow run %d started at %s, before the previous one ended (%s)", i, ev.Started.Format(time.StampMicro), end.Format(time.StampMicro))
			}
		}
	}

	// Drift: the first motd run wrote the file (drift), later ones find it
	// right; an edit by hand is drift again at the next run.
	motdEvents := func() []wire.ScheduleEvent { return scheduleEvents(t, js, subj(p1.ID(), "motd")) }
	waitUntil(t, "a clean motd run after the first", func() bool {
		ev := motdEvents()
		last := ev[len(ev)-1]
		return len(ev) >= 2 && last.Clean && last.Return == nil && len(last.Drift) == 0
	})
	first := motdEvents()[0]
	if first.States == nil || *first.States != (wire.StateSummary{Total: 1, Changed: 1}) || len(first.Drift) != 1 || first.Drift[0] != (wire.DriftState{ID: "motd", Name: motd, Function: "file.managed", SLS: "base"}) {
		t.Fatalf("first motd run: states %+v drift %+v", first.States, first.Drift)
	}
	drift := scheduleEvents(t, js, names.ScheduleDriftSubject(p1.ID(), "motd"))
	if len(drift) < 1 || drift[0].Return != nil || len(drift[0].Drift) != 1 || !drift[0].Started.Equal(first.Started) {
		t.Fatalf("drift events: %+v", drift)
	}
	before := len(drift)
	if err := os.WriteFile(motd, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the hand edit reported as drift", func() bool {
		return len(scheduleEvents(t, js, names.ScheduleDriftSubject(p1.ID(), "motd"))) > before
	})
	if b, _ := os.ReadFile(motd); string(b) != "managed by zester\n" {
		t.Errorf("the scheduled state run did not put the file right: %q", b)
	}

	// The CLI: the latest scheduled run per peel, as run output.
	code, out, errOut := zesterCLI(url, "run", "web*", "test.echo", "--scheduled")
	if code != 0 || !strings.Contains(out, `web1.example.com: scheduled test.echo "echo" at `) || !strings.Contains(out, "web1.example.com: \"hello\"") ||
		!strings.Contains(out, "web2: \"from web2\"") || !regexp.MustCompile(`test\.echo\s+2\s+2\s+0\s+0\s+0\s+0`).MatchString(out) {
		t.Fatalf("run --scheduled: exit %d\n%s\n%s", code, out, errOut)
	}
	// A drifting state run is shown in the state output; a clean one by
	// its summary (its per-state return is not stored).
	waitUntil(t, "a grow run", func() bool { return len(scheduleEvents(t, js, subj(p1.ID(), "grow"))) > 0 })
	code, out, _ = zesterCLI(url, "run", "web1.example.com", "state.sls", "--scheduled", "--state-output", "terse")
	if code != 0 || !strings.Contains(out, "1 states, 1 changed, 0 failed") || !strings.Contains(out, "drift: file.append grow") ||
		!strings.Contains(out, "Summary for web1.example.com") || !strings.Contains(out, "Function: file.append - Result: Changed") || !strings.Contains(out, "drift: web1.example.com") {
		t.Fatalf("run --scheduled of a drifting state run: exit %d\n%s", code, out)
	}
	waitUntil(t, "a clean motd run after the hand edit", func() bool {
		ev := motdEvents()
		return ev[len(ev)-1].Clean
	})
	code, out, _ = zesterCLI(url, "run", "web1.example.com", "state.apply", "--scheduled")
	if code != 0 || !strings.Contains(out, "1 states, 0 changed, 0 failed") || !strings.Contains(out, "clean: no state changed or failed") || strings.Contains(out, "Summary for") {
		t.Fatalf("run --scheduled of a clean state run: exit %d\n%s", code, out)
	}
	code, out, _ = zesterCLI(url, "run", "-L", "web1.example.com", "cmd.run", "--scheduled")
	if code != 1 || !strings.Contains(out, "ERROR retcode: command exited with status 3") || !strings.Contains(out, "    oops") || !strings.Contains(out, "failed: web1.example.com") {
		t.Fatalf("run --scheduled of a failing entry: exit %d\n%s", code, out)
	}
	code, out, _ = zesterCLI(url, "run", "web2", "cmd.run", "--scheduled")
	if code != 2 || !strings.Contains(out, "web2: no scheduled run of cmd.run recorded") {
		t.Fatalf("run --scheduled of a function web2 does not schedule: exit %d\n%s", code, out)
	}
	code, out, _ = zesterCLI(url, "run", "*", "test.echo", "--scheduled", "--entry", "slow")
	if code != 2 || !strings.Contains(out, "no scheduled run recorded: web1.example.com, web2") {
		t.Fatalf("--entry of another function: exit %d\n%s", code, out)
	}

	// A peel that stopped shows its last run, marked offline.
	stop2()
	waitUntil(t, "web2 offline", func() bool {
		_, out, _ := zesterCLI(url, "peels", "--offline")
		return strings.Contains(out, "web2 ")
	})
	code, out, _ = zesterCLI(url, "run", "*", "test.echo", "--scheduled", "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rows []struct {
		Peel, State string
		Event       *wire.ScheduleEvent
	}
	for _, l := range lines[:len(lines)-1] {
		var r struct {
			Peel, State string
			Event       *wire.ScheduleEvent
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	var sum struct {
		Summary struct {
			Peels, Results int
			Offline        []string
		}
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &sum)
	if code != 2 || len(rows) != 2 || rows[1].Peel != "web2" || rows[1].State != wire.PresenceOffline || rows[1].Event == nil ||
		string(rows[1].Event.Return.Result) != `"from web2"` || rows[0].State != wire.PresenceOnline || sum.Summary.Results != 2 || strings.Join(sum.Summary.Offline, ",") != "web2" {
		t.Fatalf("--scheduled --json with web2 offline: exit %d\n%s", code, out)
	}
	code, out, _ = zesterCLI(url, "run", "web2", "test.echo", "--scheduled")
	if code != 2 || !strings.Contains(out, "web2 (offline): scheduled test.echo") || !strings.Contains(out, "offline: web2") {
		t.Fatalf("--scheduled with web2 offline: exit %d\n%s", code, out)
	}

	// Refused at once: arguments, --batch, --entry without --scheduled.
	for _, args := range [][]string{
		{"run", "*", "test.echo", "--scheduled", "text=x"},
		{"run", "*", "test.echo", "--scheduled", "--batch", "2"},
		{"run", "*", "test.echo", "--entry", "echo"},
		{"run", "*", "test.echo", "--scheduled", "--entry", "a.b"},
	} {
		if code, _, errOut := zesterCLI(url, args...); code != 3 || errOut == "" {
			t.Errorf("%v: exit %d %q, want 3 and a reason", args, code, errOut)
		}
	}
}

// Secure mode: a peel's credentials let it store its schedule's events, and
// an operator (not admin) reads them with --scheduled.
func TestSchedule_Secure_PeelPublishesOperatorReads(t *testing.T) {
	s := mastertest.StartSecure(t)
	mastertest.Start(t, s.Config("m1"))
	cfg := peeltest.SecureConfig(t, s.Secure, "web1")
	var err error
	cfg.Schedule, err = peel.ParseSchedule("test", []byte("ping: {function: test.ping, interval: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	peeltest.Start(t, cfg)
	creds := s.UserCreds(t, pki.UserSpec{Name: "olga", Role: pki.RoleOperator})
	var out, errOut string
	waitUntil(t, "the scheduled ping shown", func() bool {
		var code int
		code, out, errOut = zesterCLI(s.URL, "--creds", creds, "run", "web1", "test.ping", "--scheduled")
		return code == 0
	})
	if !strings.Contains(out, `web1: scheduled test.ping "ping" at `) || !strings.Contains(out, "web1: true") || errOut != "" {
		t.Fatalf("operator's --scheduled:\n%s\n%s", out, errOut)
	}
}

// A bad schedule in peel.yaml stops zester-peel --check (and the peel) with
// the entry and key named, exit 2.
func TestBinaries_PeelCheck_BadScheduleNamed(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ schedule, want string }{
		{"  hs:\n    function: state.nothere\n    interval: 30m\n", `config key schedule.hs.function: unknown function "state.nothere"; this peel has `},
		{"  hs:\n    function: test.ping\n    interval: 30m\n    splay: 1h\n", "config key schedule.hs.splay: 1h0m0s: longer than the interval (30m0s)"},
		{"  hs:\n    function: test.ping\n    every: 30m\n", `unknown field "every"`},
	} {
		path := filepath.Join(dir, "peel.yaml")
		os.WriteFile(path, []byte("id: p1\ninsecure: true\ndata_dir: "+dir+"\nschedule:\n"+c.schedule), 0o600)
		code, out := run(t, "zester-peel", "--config", path, "--check")
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("--check of\n%s: exit %d %q, want 2 and %q", c.schedule, code, out, c.want)
		}
		code, out = run(t, "zester-peel", "--config", path)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("start with\n%s: exit %d %q, want 2 and %q", c.schedule, code, out, c.want)
		}
	}
}

// SetSchedule (the settings' way in) changes a running peel's schedule: an
// entry added runs, a changed one runs only in its new form from its first
// new run on (the old loop is gone), and peel.yaml's entry of the same name
// wins over it.
func TestSchedule_SetSchedule_ChangesARunningPeel(t *testing.T) {
	s := testkit.Server(t)
	url := s.ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	cfg := peeltest.Config(t, "web1", url)
	cfg.Schedule, _ = peel.ParseSchedule("test", []byte("file: {function: test.echo, args: [from the file], interval: 200ms}\n"))
	p, _ := startScheduledPeel(t, cfg, nil)
	_, js := testkit.ConnectJS(t, url)
	results := func(entry string) []string {
		var out []string
		for _, ev := range scheduleEvents(t, js, names.ScheduleEventSubject("web1", entry)) {
			out = append(out, string(ev.Return.Result))
		}
		return out
	}
	set := func(yaml string) {
		t.Helper()
		sc, err := peel.ParseSchedule("settings", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.SetSchedule(sc); err != nil {
			t.Fatal(err)
		}
	}
	set("extra: {function: test.echo, args: [v1], interval: 200ms}\nfile: {function: test.echo, args: [from settings], interval: 200ms}\n")
	waitUntil(t, "extra runs", func() bool { return len(results("extra")) >= 2 })
	set("extra: {function: test.echo, args: [v2], interval: 200ms}\n")
	waitUntil(t, "extra runs as changed, twice", func() bool {
		r := results("extra")
		return len(r) >= 2 && r[len(r)-1] == `"v2"` && r[len(r)-2] == `"v2"`
	})
	r := results("extra")
	first := slices.Index(r, `"v2"`)
	for i, v := range r {
		if (i < first && v != `"v1"`) || (i >= first && v != `"v2"`) {
			t.Fatalf("extra's results %v: a v1 run after the change", r)
		}
	}
	for _, v := range results("file") {
		if v != `"from the file"` {
			t.Fatalf("peel.yaml's entry was replaced by the settings' one: %v", results("file"))
		}
	}
}
