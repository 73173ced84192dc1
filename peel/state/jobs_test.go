package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/state"
)

// A second state run while one is in progress is refused with
// state_busy; show_sls is not a run and is answered.
func TestJobs_OneStateRunAtATime(t *testing.T) {
	dir := t.TempDir()
	started, gate := filepath.Join(dir, "started"), filepath.Join(dir, "go")
	os.WriteFile(filepath.Join(dir, "slow.sls"), []byte("slow:\n  cmd.run:\n    - name: touch "+started+"; while [ ! -e "+gate+" ]; do sleep 0.02; done\n"), 0o644)
	reg := funcs.NewRegistry()
	state.Register(reg, state.JobConfig{StatesDir: dir})
	env := &funcs.Env{PeelID: "p1"}
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		res, err := reg.Run(ctx, env, "state.apply", json.RawMessage(`["slow"]`))
		if err == nil && res.(state.Return).Failed() {
			err = errors.New("the first run failed")
		}
		done <- err
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first run did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err := reg.Run(ctx, env, "state.apply", json.RawMessage(`["slow"]`))
	var fe *funcs.Error
	if !errors.As(err, &fe) || fe.Code != state.CodeBusy {
		t.Errorf("second run: %v, want %s", err, state.CodeBusy)
	}
	if _, err := reg.Run(ctx, env, "state.show_sls", json.RawMessage(`["slow"]`)); err != nil {
		t.Errorf("show_sls during a run: %v", err)
	}
	os.WriteFile(gate, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Run(ctx, env, "state.apply", json.RawMessage(`["slow"]`)); err != nil {
		t.Errorf("a run after the first ended: %v", err)
	}
}
