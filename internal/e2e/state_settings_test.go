package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/cli/clitest"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
)

// settingsStateTree is a state tree whose templates read settings (a
// plain one and a secret one) and a basket entry of another peel.
func settingsStateTree(out string) map[string]string {
	return map[string]string{
		"top.sls": "base:\n  'web*':\n    - app\n",
		"app/init.sls": fmt.Sprintf(`app conf:
  file.managed:
    - name: %[1]s/app.conf
    - source: salt://app/app.conf
    - template: jinja
pw:
  file.managed:
    - name: %[1]s/pw
    - contents: '{{ setting "db:password" }}'
peers:
  file.managed:
    - name: %[1]s/peers
    - contents: 'db={{ index (basket "G@id:db7" "role") "db7" }} site={{ setting "site" }}'
`, out),
		"app/app.conf": "site = {{ setting \"site\" }}\npassword = {{ setting \"db:password\" }}\n",
	}
}

// {{ setting }} in .sls files and file templates, through zester run
// state.apply with a real master (settings_dir and states_dir) and real
// peels: a plain setting, a secret setting and a basket entry reach the
// managed files; the secret's plaintext is in the files and nowhere in
// the return (the diff shows <secret>), nor in the stored return. The same
// tree through zester-peel call reads the daemon's cached settings.
func TestStateSettings_SettingAndBasketReachFiles_SecretMasked(t *testing.T) {
	srv := testkit.Server(t)
	url := srv.ClientURL()
	js := testkit.JetStream(t, url)
	f := newSettingsFixture(t, js, "")
	out := t.TempDir()
	states := t.TempDir()
	writeTree(t, states, settingsStateTree(out))
	mcfg := mastertest.Config("m1", url)
	mcfg.SettingsDir, mcfg.PKIDir, mcfg.StatesDir = f.dir, f.pkiDir, states
	mastertest.Start(t, mcfg)

	wcfg := peeltest.Config(t, "web3", url)
	wcfg.StatesDir = filepath.Join(t.TempDir(), "absent") // the masters' tree
	web := peeltest.Start(t, wcfg)
	dcfg := peeltest.Config(t, "db7", url)
	dcfg.Basket = map[string]peel.BasketSpec{"role": spec("test.echo", "db")}
	peeltest.Start(t, dcfg)
	testkit.Eventually(t, "web3 renders its settings", settingsHang, func() bool { return web.Settings()["site"] == "web3.example.com" })

	// An old config file: the run's diff replaces its password line.
	os.WriteFile(filepath.Join(out, "app.conf"), []byte("site = old\npassword = old-password\n"), 0o644)
	var code int
	var stdout, stderr string
	// Until db7's entry is in the basket the template fails (a missing
	// key): apply again until it is there.
	testkit.Eventually(t, "state.apply succeeds", settingsHang, func() bool {
		code, stdout, stderr = clitest.Zester(t, url, "run", "--json", "--timeout", "60s", "web3", "state.apply", "app")
		return code == 0
	})
	want := map[string]string{
		"app.conf": "site = web3.example.com\npassword = " + settingsSecret + "\n",
		"pw":       settingsSecret + "\n",
		"peers":    "db=db site=web3.example.com\n",
	}
	for name, w := range want {
		if b, _ := os.ReadFile(filepath.Join(out, name)); string(b) != w {
			t.Errorf("%s = %q, want %q", name, b, w)
		}
	}
	if strings.Contains(stdout+stderr, settingsSecret) {
		t.Fatalf("the return shows the secret:\n%s\n%s", stdout, stderr)
	}
	masked := strings.ReplaceAll(stdout, `\u003c`, "<")
	masked = strings.ReplaceAll(masked, `\u003e`, ">")
	if !strings.Contains(masked, "-password = old-password") || !strings.Contains(masked, "+password = "+render.Masked) {
		t.Errorf("app.conf's diff does not show the masked change:\n%s", stdout)
	}
	kv, err := js.KeyValue(context.Background(), names.BucketJobReturns)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.ListKeys(context.Background())
	n := 0
	for k := range keys.Keys() {
		if e, err := kv.Get(context.Background(), k); err == nil && strings.Contains(string(e.Value()), settingsSecret) {
			t.Errorf("stored return %s holds the secret", k)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no stored returns")
	}
	// A second run changes nothing.
	code, stdout, _ = clitest.Zester(t, url, "run", "--timeout", "60s", "web3", "state.apply", "app")
	if code != 0 || !strings.Contains(stdout, "changed=0") {
		t.Errorf("second apply: %d\n%s", code, stdout)
	}

	// zester-peel call: the daemon's cached settings, rendered locally
	// (no connection, so no basket: the sls without peers).
	local := t.TempDir()
	callOut := t.TempDir()
	tree := settingsStateTree(callOut)
	tree["app/init.sls"] = tree["app/init.sls"][:strings.Index(tree["app/init.sls"], "peers:")]
	writeTree(t, local, tree)
	cfgFile := filepath.Join(t.TempDir(), "peel.yaml")
	os.WriteFile(cfgFile, []byte("id: web3\ndata_dir: "+wcfg.DataDir+"\n"), 0o644)
	var o, e strings.Builder
	if code := peel.Call([]string{"--config", cfgFile, "--local", local, "--json", "state.apply", "app"}, &o, &e); code != 0 {
		t.Fatalf("zester-peel call: %d\n%s\n%s", code, o.String(), e.String())
	}
	if b, _ := os.ReadFile(filepath.Join(callOut, "app.conf")); string(b) != want["app.conf"] {
		t.Errorf("call: app.conf = %q", b)
	}
	if strings.Contains(o.String()+e.String(), settingsSecret) {
		t.Errorf("call output shows the secret:\n%s", o.String())
	}
}
