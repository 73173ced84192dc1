package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/peel/state/mod"
	"github.com/zester-io/zester/peel/state/modtest"
	"github.com/zester-io/zester/peel/state/service"
)

// applyWeb is a state.apply for the sls "web" only, run by the real
// service module: nginx running and enabled (a real daemon behind the
// systemctl stand-in), and ghost running, a unit that does not exist, so
// one state always fails. It decodes its arguments as every peel function
// does: positional mods, and test by name.
func applyWeb(ctx context.Context, _ *funcs.Env, raw json.RawMessage) (any, error) {
	var a struct {
		Mods string `json:"mods"`
		Test bool   `json:"test"`
	}
	if err := funcs.DecodeArgs(raw, &a, "mods"); err != nil {
		return nil, err
	}
	if a.Mods != "web" {
		return nil, fmt.Errorf("no sls %q", a.Mods)
	}
	tab := mod.NewTable()
	service.Register(tab)
	env := &mod.Env{Ctx: ctx, Test: a.Test, Run: modtest.Exec}
	out := map[string]mod.Run{}
	for i, d := range []struct {
		id   string
		args mod.Args
	}{{"nginx", mod.Args{"enable": true}}, {"ghost", nil}} {
		e, _ := tab.Lookup("service.running")
		start := time.Now()
		r := e.Fn(env, d.id, d.args)
		out[mod.RunKey("service", d.id, d.id, "running")] = mod.Run{Result: r, ID: d.id, SLS: "web", RunNum: i,
			StartTime: start.Format("15:04:05.000000"), Duration: float64(time.Since(start).Microseconds()) / 1000}
	}
	return out, nil
}

// TestRun_StateApply_SaltOutputAndMixedArgs runs `zester run web1
// state.apply web test=true` (positional words and key=value together)
// through a real master and peel: the peel reads test=true (nothing
// starts, Result None), then a real apply changes the service, a second
// changes nothing, and each --state-output mode prints Salt's block with
// the failing state first and the summary counts.
func TestRun_StateApply_SaltOutputAndMixedArgs(t *testing.T) {
	st := modtest.Tool(t, "SYSTEMD_STATE", "../../peel/state/service/testdata/systemctl.sh", "systemctl")
	os.MkdirAll(filepath.Join(st, "units"), 0o755)
	os.WriteFile(filepath.Join(st, "units", "nginx.service"), []byte("while :; do sleep 0.2 & wait $!; done\n"), 0o644)
	t.Cleanup(func() {
		modtest.Exec(context.Background(), mod.Command{Argv: []string{"systemctl", "stop", "--", "nginx"}})
	})

	url := testkit.Server(t).ClientURL()
	mastertest.Start(t, mastertest.Config("m1", url))
	reg := funcs.NewRegistry()
	reg.Register("state.apply", applyWeb)
	peeltest.StartWith(t, peeltest.Config(t, "web1", url), peel.Options{Registry: reg})
	running := func() bool { _, err := os.Stat(filepath.Join(st, "pid", "nginx.service")); return err == nil }

	// blocks splits a peel's output into its state blocks (by ID).
	ids := regexp.MustCompile(`(?m)^ {10}ID: (\S+)$`)
	apply := func(args ...string) string {
		t.Helper()
		code, out, errOut := clitest.Zester(t, url, append([]string{"run", "--timeout", "30s", "web1", "state.apply"}, args...)...)
		if code != 0 {
			t.Fatalf("state.apply %q: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}
	mustHave := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("output lacks %q:\n%s", w, out)
			}
		}
	}

	out := apply("web", "test=true")
	if running() {
		t.Fatal("test=true started the service: the peel did not read test from the mixed arguments")
	}
	if got := ids.FindAllStringSubmatch(out, -1); len(got) != 2 || got[0][1] != "ghost" || got[1][1] != "nginx" {
		t.Fatalf("want ghost (failed) then nginx in full, got %v:\n%s", got, out)
	}
	mustHave(out, "web1:\n", "    Function: service.running\n", "      Result: False\n", "      Result: None\n",
		"     Comment: The named service ghost is not available\n", "     Comment: Service nginx would be started and enabled\n",
		"Summary for web1\n", "Succeeded: 1 (unchanged=0, changed=1)\n", "Failed:    1\n", "Total states run:     2\n", "Total run time:")

	out = apply("web")
	if !running() {
		t.Fatal("apply did not start the service")
	}
	mustHave(out, "      Result: True\n", "     Changes:\n              ----------\n              nginx:\n                  True\n", "Succeeded: 1 (changed=1)\n")

	// The second apply changes nothing: --state-output=changes prints the
	// failed state in full and the clean one terse.
	code, out, errOut := clitest.Zester(t, url, "run", "--state-output=changes", "--timeout", "30s", "web1", "state.apply", "web")
	if code != 0 {
		t.Fatalf("exit %d %s %s", code, out, errOut)
	}
	if got := ids.FindAllStringSubmatch(out, -1); len(got) != 1 || got[0][1] != "ghost" {
		t.Fatalf("changes mode: full blocks %v:\n%s", got, out)
	}
	mustHave(out, "  Name: nginx - Function: service.running - Result: Clean - Started: ", "Succeeded: 1 (changed=0)\n")

	code, out, _ = clitest.Zester(t, url, "--state-output", "terse", "run", "--timeout", "30s", "web1", "state.apply", "web")
	if code != 0 || ids.MatchString(out) || !strings.Contains(out, "  Name: ghost - Function: service.running - Result: Failed") {
		t.Fatalf("terse: exit %d:\n%s", code, out)
	}

	// --json is the return as stored: Salt's map of run keys.
	code, out, _ = clitest.Zester(t, url, "run", "--json", "--timeout", "30s", "web1", "state.apply", "web", "test=false")
	var r wire.Return
	if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &r) != nil {
		t.Fatalf("--json: exit %d %q", code, out)
	}
	var m map[string]mod.Run
	if err := json.Unmarshal(r.Result, &m); err != nil || m["service_|-nginx_|-nginx_|-running"].Status != mod.OK || m["service_|-ghost_|-ghost_|-running"].Status != mod.Failed {
		t.Fatalf("--json result %s (%v)", r.Result, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--state-output=everything", "run", "web1", "state.apply", "web"}, `--state-output "everything": want one of full, terse, changes`},
		{[]string{"run", "--timeout", "30s", "web1", "state.apply", "web", "mods=db"}, `argument "mods" given twice`},
	} {
		code, out, errOut := clitest.Zester(t, url, tc.args...)
		if code == 0 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%q: exit %d, want failure with %q\n%s\n%s", tc.args, code, tc.want, out, errOut)
		}
	}
}
