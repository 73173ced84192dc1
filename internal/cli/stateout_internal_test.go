package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/stateout"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/state/mod"
)

// TestPrintStates_FileDiffAndOrder: a file state's diff prints one line a
// line under Changes, nested maps and lists as Salt's nested outputter
// does, failing states come first whatever their run order, and a return
// that is not a state map prints as before.
func TestPrintStates_FileDiffAndOrder(t *testing.T) {
	ret := map[string]mod.Run{
		mod.RunKey("file", "motd", "/etc/motd", "managed"): {Result: mod.Result{Name: "/etc/motd", Status: mod.OK,
			Changes: map[string]any{"diff": "--- /etc/motd\n+++ /etc/motd\n@@ -1 +1 @@\n-old\n+new\n", "mode": "0644"}, Comment: "File /etc/motd updated"},
			ID: "motd", RunNum: 0, StartTime: "10:00:00.000001", Duration: 1.5},
		mod.RunKey("pkg", "tools", "tools", "installed"): {Result: mod.Result{Name: "tools", Status: mod.OK,
			Changes: map[string]any{"jq": map[string]any{"old": "", "new": "1.6-2"}, "list": []any{"a", true, nil}}},
			ID: "tools", RunNum: 1, StartTime: "10:00:00.000002", Duration: 1200},
		mod.RunKey("cmd", "late", "false", "run"): {Result: mod.Result{Name: "false", Status: mod.Failed, Comment: "Command \"false\" run\nretcode 1"},
			ID: "late", RunNum: 2, StartTime: "10:00:01.000000", Duration: 0.5},
	}
	raw, _ := json.Marshal(ret)
	var b bytes.Buffer
	printReturn(&b, &wire.Return{Peel: "web1", Function: "state.highstate", Success: false, Result: raw,
		Error: &wire.Error{Code: "states_failed", Msg: "1 state failed"}}, stateout.Full)
	out := b.String()
	want := `web1:
----------
          ID: late
    Function: cmd.run
        Name: false
      Result: False
     Comment: Command "false" run
              retcode 1
     Started: 10:00:01.000000
    Duration: 0.500 ms
     Changes:
----------
          ID: motd
    Function: file.managed
        Name: /etc/motd
      Result: True
     Comment: File /etc/motd updated
     Started: 10:00:00.000001
    Duration: 1.500 ms
     Changes:
              ----------
              diff:
                  --- /etc/motd
                  +++ /etc/motd
                  @@ -1 +1 @@
                  -old
                  +new
              mode:
                  0644
----------
          ID: tools
    Function: pkg.installed
        Name: tools
      Result: True
     Comment: 
     Started: 10:00:00.000002
    Duration: 1200.000 ms
     Changes:
              ----------
              jq:
                  ----------
                  new:
                      1.6-2
                  old:
                      
              list:
                  - a
                  - True
                  - None
    error: states_failed: 1 state failed

Summary for web1
------------
Succeeded: 2 (changed=2)
Failed:    1
------------
Total states run:     3
Total run time:    1.202 s
`
	if out != want {
		t.Fatalf("got:\n%s\nwant:\n%s", out, want)
	}

	b.Reset()
	printReturn(&b, &wire.Return{Peel: "web1", Function: "state.show_sls", Success: true, Result: json.RawMessage(`{"motd":{"file":["managed"]}}`)}, stateout.Full)
	if got := b.String(); got != `web1: {"motd":{"file":["managed"]}}`+"\n" {
		t.Fatalf("show_sls printed %q", got)
	}
	b.Reset()
	printReturn(&b, &wire.Return{Peel: "web1", Function: "state.apply", Success: true, Result: json.RawMessage(`{"not a run key":{}}`)}, stateout.Terse)
	if got := b.String(); !strings.HasPrefix(got, `web1: {"not a run key"`) {
		t.Fatalf("non-state map printed %q", got)
	}
}
