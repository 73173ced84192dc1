package master_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/master/mastertest"
)

// A render batch pauses the master's followers of settings-files and
// secrets while it writes, and resumes them after its own writes when only
// those came in between. What someone else wrote meanwhile is still seen:
// an entry overwritten during the pause (before the batch's own writes) is
// written again, and so is one deleted after the batch.
func TestSettings_FollowerPause_SeesWritesDuringThePause(t *testing.T) {
	srv := testkit.Server(t)
	url := srv.ClientURL()
	js := testkit.JetStream(t, url)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("top.zy", "'a*': [a]\n'b*': [b]\n")
	write("a.zy", "x: {{ .id }}\n")
	write("b.zy", "y: {{ .id }}\n")

	var files jetstream.KeyValue // set before the hook is armed
	var foreign atomic.Bool      // the hook writes once, when armed
	restore := master.SetFollowPause(1, func() {
		if foreign.CompareAndSwap(true, false) {
			if _, err := files.Put(ctx, names.SettingsFilesKey("a1"), []byte("not the master's")); err != nil {
				t.Error(err)
			}
		}
	})
	defer restore()

	cfg := mastertest.Config("m1", url)
	cfg.SettingsDir = dir
	mastertest.Start(t, cfg)
	files, facts := kvOf(t, js, names.BucketSettingsFiles), kvOf(t, js, names.BucketFacts)
	ids := []string{"a1", "a2", "b1", "b2", "b3"}
	for _, id := range ids {
		b, _ := json.Marshal(map[string]any{"id": id})
		if _, err := facts.Put(ctx, names.FactsKey(id), factcodec.Encode(b)); err != nil {
			t.Fatal(err)
		}
	}
	ours := func(id string) bool {
		e, err := files.Get(ctx, names.SettingsFilesKey(id))
		return err == nil && len(e.Value()) > 0 && e.Value()[0] == '{'
	}
	hashOf := func(id string) string {
		m, err := js.Stream(ctx, names.KVStream(names.BucketSettingsFiles))
		if err != nil {
			return ""
		}
		msg, err := m.GetLastMsgForSubject(ctx, names.KVSubjectPrefix(names.BucketSettingsFiles)+names.SettingsFilesKey(id))
		if err != nil {
			return ""
		}
		return msg.Header.Get(names.HeaderContentHash)
	}
	const hang = 30 * time.Second
	testkit.Eventually(t, "every peel rendered", hang, func() bool {
		for _, id := range ids {
			if !ours(id) || hashOf(id) == "" {
				return false
			}
		}
		return true
	})

	// A change only the b peels apply: a batch that writes their entries
	// and not a1's, which the hook overwrites after the pause, before the
	// batch's writes. The master must see that write (its sequence is not
	// one of its own) and write a1 again.
	foreign.Store(true)
	write("b.zy", "y: {{ .id }}\nz: 1\n")
	testkit.Eventually(t, "the foreign write during the pause undone", hang, func() bool {
		return !foreign.Load() && ours("a1") && hashOf("a1") != ""
	})

	// After a batch of only its own writes the followers go on after them:
	// a later delete is seen.
	write("b.zy", "y: {{ .id }}\nz: 2\n")
	testkit.Eventually(t, "b peels rendered again", hang, func() bool {
		e, err := files.Get(ctx, names.SettingsFilesKey("b2"))
		return err == nil && strings.Contains(string(e.Value()), "z: 2")
	})
	if err := files.Delete(ctx, names.SettingsFilesKey("b1")); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "a deleted entry written again", hang, func() bool { return ours("b1") })
	for _, id := range ids {
		if !ours(id) {
			t.Fatalf("%s: not the master's entry", id)
		}
	}
}

func kvOf(t *testing.T, js jetstream.JetStream, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
