package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/cli"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/topology"
)

// The basket (Salt's mine) end to end, in process: real nats-servers, a
// master, peels publishing their entries, the CLI and peels reading them.

// zcli runs the zester CLI in process against url (with creds when set).
func zcli(t *testing.T, url, creds string, args ...string) (int, string, string) {
	t.Helper()
	pre := []string{"--nats", url, "--pki-dir", ""}
	if creds != "" {
		pre = append(pre, "--creds", creds)
	}
	var out, errb bytes.Buffer
	code := cli.Main(append(pre, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func spec(fn string, args ...any) peel.BasketSpec {
	s := peel.BasketSpec{Function: fn}
	if len(args) > 0 {
		s.Args, _ = json.Marshal(args)
	}
	return s
}

// basketKV opens the basket bucket over a connection of its own.
func basketKV(t *testing.T, url string, opts ...nats.Option) (jetstream.KeyValue, jetstream.JetStream) {
	t.Helper()
	c := pkitest.Connect(t, url, "", opts...)
	var kv jetstream.KeyValue
	testkit.Eventually(t, "basket bucket", 30*time.Second, func() bool {
		var err error
		kv, err = c.JS.KeyValue(context.Background(), names.BucketBasket)
		return err == nil
	})
	return kv, c.JS
}

// basketSetup starts a server and a master on it.
func basketSetup(t *testing.T) (*topology.Server, *mastertest.Handle, string) {
	t.Helper()
	s := testkit.Server(t)
	return s, mastertest.Start(t, mastertest.Config("m1", s.ClientURL())), s.ClientURL()
}

// entryOf is the stored entry of one key, nil while there is none.
func entryOf(kv jetstream.KeyValue, id, name string) (*wire.BasketEntry, uint64) {
	e, err := kv.Get(context.Background(), names.BasketKey(id, name))
	if err != nil {
		return nil, 0
	}
	var be wire.BasketEntry
	if json.Unmarshal(e.Value(), &be) != nil {
		return nil, 0
	}
	return &be, e.Revision()
}

func waitEntry(t *testing.T, kv jetstream.KeyValue, id, name string, within time.Duration) *wire.BasketEntry {
	t.Helper()
	var be *wire.BasketEntry
	testkit.Eventually(t, "basket entry "+names.BasketKey(id, name), within, func() bool {
		be, _ = entryOf(kv, id, name)
		return be != nil
	})
	return be
}

// hasRow reports whether a table printed a row with these cells.
func hasRow(out string, cells ...string) bool {
	quoted := make([]string, len(cells))
	for i, c := range cells {
		quoted[i] = regexp.QuoteMeta(c)
	}
	return regexp.MustCompile(`(?m)^` + strings.Join(quoted, `\s+`) + `\s*$`).MatchString(out)
}

// jobResult runs fn on one peel with the CLI and returns its result.
func jobResult(t *testing.T, url, creds, id string, args ...string) json.RawMessage {
	t.Helper()
	code, out, errOut := zcli(t, url, creds, append([]string{"run", "--json", "-L", id}, args...)...)
	if code != 0 {
		t.Fatalf("zester run %s %v: %d\n%s%s", id, args, code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		var r wire.Return
		if json.Unmarshal([]byte(line), &r) == nil && r.Peel == id {
			return r.Result
		}
	}
	t.Fatalf("no return of %s in:\n%s", id, out)
	return nil
}

// Peel A publishes, peel B reads it with basket.get, the CLI reads both,
// by glob and by fact (-G); names no peel publishes and bad input are
// answered clearly.
func TestBasket_RoundTripAcrossPeels(t *testing.T) {
	_, _, url := basketSetup(t)
	for id, role := range map[string]string{"a.example.com": "web", "b.example.com": "db"} {
		c := peeltest.Config(t, id, url)
		c.Basket = map[string]peel.BasketSpec{"role": spec("test.echo", role), "ipv4": spec("network.ipv4")}
		peeltest.Start(t, c)
	}
	kv, _ := basketKV(t, url)
	for _, id := range []string{"a.example.com", "b.example.com"} {
		waitEntry(t, kv, id, "role", 30*time.Second)
		waitEntry(t, kv, id, "ipv4", 30*time.Second)
	}

	code, out, errOut := zcli(t, url, "", "basket", "get", "a*", "role")
	if code != 0 || !hasRow(out, "PEEL", "VALUE") || !hasRow(out, "a.example.com", "web") || strings.Contains(out, "b.example.com") {
		t.Fatalf("basket get a* role: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = zcli(t, url, "", "basket", "get", "-G", "id:b.example.com", "role")
	if code != 0 || !hasRow(out, "b.example.com", "db") || strings.Contains(out, "a.example.com") {
		t.Fatalf("basket get -G id:b.example.com role: %d\n%s%s", code, out, errOut)
	}
	// The value is what network.ipv4 says on this host.
	want, err := funcs.NewRegistry().Run(context.Background(), nil, "network.ipv4", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	code, out, errOut = zcli(t, url, "", "basket", "get", "--json", "*", "ipv4")
	var resp wire.BasketGetResponse
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || len(resp.Values) != 2 {
		t.Fatalf("basket get --json * ipv4: %d\n%s%s", code, out, errOut)
	}
	for id, v := range resp.Values {
		if string(v) != string(wantJSON) {
			t.Errorf("ipv4 of %s = %s, want %s", id, v, wantJSON)
		}
	}

	// Peel B reads A's entry with the job function, by glob and by fact.
	if got := jobResult(t, url, "", "b.example.com", "basket.get", "a*", "role"); string(got) != `{"a.example.com":"web"}` {
		t.Fatalf("basket.get on b: %s", got)
	}
	if got := jobResult(t, url, "", "b.example.com", "basket.get", "target=id:a.example.com", "name=role", "kind=fact"); string(got) != `{"a.example.com":"web"}` {
		t.Fatalf("basket.get -G on b: %s", got)
	}

	code, out, _ = zcli(t, url, "", "basket", "ls")
	if code != 0 || !hasRow(out, "PEEL", "NAME", "FUNCTION", "BYTES", "UPDATED") || !strings.Contains(out, "4 entries") ||
		!regexp.MustCompile(`(?m)^a\.example\.com\s+role\s+test\.echo\s+5\s`).MatchString(out) {
		t.Fatalf("basket ls:\n%s", out)
	}
	code, out, _ = zcli(t, url, "", "basket", "get", "*", "nothere")
	if code != 0 || !strings.Contains(out, "0 peels publish nothere; 2 selected peels do not: a.example.com, b.example.com") {
		t.Fatalf("basket get * nothere: %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"basket", "get", "*", "bad.name"}, `invalid basket name "bad.name"`},
		{[]string{"basket", "get", "-G", "nocolon", "role"}, "master refused"},
		{[]string{"basket", "get", "-C", "G@role:web and (", "role"}, "master refused"},
	} {
		code, out, errOut := zcli(t, url, "", tc.args...)
		if code != cli.ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q %q, want exit 3 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, out, _ = zcli(t, url, "", "run", "b.example.com", "basket.get", "a*")
	if code != cli.ExitFailed || !strings.Contains(out, `arguments \"target\" and \"name\" are required`) && !strings.Contains(out, `arguments "target" and "name" are required`) {
		t.Fatalf("basket.get without a name: %d\n%s", code, out)
	}
}

// An entry is written when its value changes and not otherwise: across
// rounds of the other entry (whose value changes every round: a new pid)
// the unchanged one keeps its revision; a change of the file it reads is
// written once. An entry dropped from the configuration is deleted.
func TestBasket_WritesOnChangeOnly(t *testing.T) {
	_, _, url := basketSetup(t)
	const id = "c.example.com"
	file := filepath.Join(t.TempDir(), "version")
	if err := os.WriteFile(file, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := peeltest.Config(t, id, url)
	c.BasketInterval = config.Dur(time.Second)
	c.Basket = map[string]peel.BasketSpec{"static": spec("file.read", file), "tick": spec("cmd.run", "true")}
	p := peeltest.Start(t, c)
	kv, _ := basketKV(t, url)
	// Every write of tick, counted as the store delivers them.
	w, err := kv.Watch(context.Background(), names.BasketKey(id, "tick"), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var ticks atomic.Int64
	go func() {
		for e := range w.Updates() {
			if e != nil {
				ticks.Add(1)
			}
		}
	}()
	// Rounds run in name order (static, then tick): once tick was written
	// three times after static was, at least two whole rounds ran.
	waitEntry(t, kv, id, "static", 30*time.Second)
	rounds := func(what string) {
		t.Helper()
		from := ticks.Load()
		testkit.Eventually(t, what, 60*time.Second, func() bool { return ticks.Load() >= from+3 })
	}
	_, rev := entryOf(kv, id, "static")
	rounds("three rounds")
	if _, r := entryOf(kv, id, "static"); r != rev {
		t.Fatalf("unchanged entry rewritten: revision %d → %d", rev, r)
	}
	if err := os.WriteFile(file, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	var changed uint64
	testkit.Eventually(t, "changed value written", 30*time.Second, func() bool {
		be, r := entryOf(kv, id, "static")
		if be != nil && strings.Contains(string(be.Value), `"content":"v2"`) {
			changed = r
			return true
		}
		return false
	})
	rounds("three more rounds")
	if _, r := entryOf(kv, id, "static"); r != changed {
		t.Fatalf("entry written again without a change: revision %d → %d", changed, r)
	}

	// Entries from outside peel.yaml (the settings' basket): added, then
	// dropped and so deleted.
	if err := p.SetBasketFuncs(map[string]peel.BasketSpec{"extra": spec("test.echo", "x")}); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, kv, id, "extra", 30*time.Second)
	if err := p.SetBasketFuncs(nil); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "dropped entry deleted", 30*time.Second, func() bool {
		_, err := kv.Get(context.Background(), names.BasketKey(id, "extra"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
}

// With the trust layer's permissions (operator mode, per-peel JWTs), a peel
// writes and reads only its own basket keys, and reads everyone's through
// a master, with a signed request; operators, readonly users and users
// limited to some targets read what they may see.
func TestBasket_Secure_OwnEntriesOnly(t *testing.T) {
	sec := mastertest.StartSecure(t)
	mc := sec.Config("m1")
	mc.Enroll.AutoAccept = []string{"c*"}
	mastertest.Start(t, mc)
	const a, b = "a.example.com", "b.example.com"
	creds := map[string]string{}
	for id, role := range map[string]string{a: "web", b: "db"} {
		c := peeltest.SecureConfig(t, sec.Secure, id)
		c.Basket = map[string]peel.BasketSpec{"role": spec("test.echo", role)}
		creds[id] = c.NATS.Creds
		peeltest.Start(t, c)
	}
	admin := sec.AdminCreds()
	kv, _ := basketKV(t, sec.URL, nats.UserCredentials(admin))
	waitEntry(t, kv, a, "role", 30*time.Second)
	waitEntry(t, kv, b, "role", 30*time.Second)

	if got := jobResult(t, sec.URL, admin, b, "basket.get", "*", "role"); string(got) != `{"a.example.com":"web","b.example.com":"db"}` {
		t.Fatalf("basket.get on b (a signed peel request): %s", got)
	}
	// An enrolled peel signs with the identity it made and was issued.
	ec := peeltest.Config(t, "c.example.com", sec.URL)
	ec.Insecure, ec.EnrollCreds = false, filepath.Join(sec.Dir, pki.FileEnrollCreds)
	peeltest.Start(t, ec)
	if got := jobResult(t, sec.URL, admin, "c.example.com", "basket.get", "a* or b*", "role", "compound"); string(got) != `{"a.example.com":"web","b.example.com":"db"}` {
		t.Fatalf("basket.get on the enrolled peel c: %s", got)
	}
	viewer := sec.UserCreds(t, pki.UserSpec{Name: "viewer", Role: pki.RoleReadonly})
	if code, out, errOut := zcli(t, sec.URL, viewer, "basket", "get", "-G", "id:a.example.com", "role"); code != 0 || !hasRow(out, a, "web") {
		t.Fatalf("readonly basket get: %d\n%s%s", code, out, errOut)
	}
	limited := sec.UserCreds(t, pki.UserSpec{Name: "limited", Role: pki.RoleOperator, Targets: []string{"b*"}})
	if code, out, errOut := zcli(t, sec.URL, limited, "basket", "get", "*", "role"); code != 0 || !hasRow(out, b, "db") || strings.Contains(out, a) {
		t.Fatalf("basket get of a user limited to b*: %d\n%s%s", code, out, errOut)
	}

	// Peel a's own credentials, on a connection of the test's.
	conn := pkitest.Connect(t, sec.URL, names.PeelInboxPrefix(a), nats.UserCredentials(creds[a]))
	ctx := pkitest.Ctx(t)
	body, _ := json.Marshal(wire.BasketEntry{Peel: b, Name: "role", Function: "test.echo", Value: json.RawMessage(`"forged"`)})
	forged := names.KVSubjectPrefix(names.BucketBasket) + names.BasketKey(b, "role")
	conn.ExpectDenied(t, forged, func(ctx context.Context) { conn.JS.Publish(ctx, forged, body) })
	conn.ExpectDenied(t, names.JSDirectGetKey(names.BucketBasket, names.BasketKey(b, "role")), func(ctx context.Context) {
		peelproto.GetKV(ctx, conn.Conn, names.BucketBasket, names.BasketKey(b, "role"))
	})
	if be, _ := entryOf(kv, b, "role"); be == nil || string(be.Value) != `"db"` {
		t.Fatalf("b's entry after a's forged write: %+v", be)
	}
	// Its own keys it writes and reads.
	own, _ := json.Marshal(wire.BasketEntry{Peel: a, Name: "other", Function: "test.echo", Value: json.RawMessage(`1`)})
	if _, err := peelproto.PutKV(ctx, conn.JS, names.BucketBasket, names.BasketKey(a, "other"), own); err != nil {
		t.Fatalf("a writes its own key: %v", err)
	}
	if _, _, err := peelproto.GetKV(ctx, conn.Conn, names.BucketBasket, names.BasketKey(a, "role")); err != nil {
		t.Fatalf("a reads its own key: %v", err)
	}
	// basket.get without a signature is refused by the master.
	req, _ := json.Marshal(wire.BasketGetRequest{Target: wire.Target{Expr: "*"}, Name: "role"})
	m, err := conn.Request(names.APISubject(names.EndpointBasketGet), req)
	if err != nil || m.Header.Get(micro.ErrorCodeHeader) != "401" || !strings.Contains(m.Header.Get(micro.ErrorHeader), "unsigned request") {
		t.Fatalf("unsigned basket.get: %v %v", err, m)
	}
}

// After a store rebuild (the JetStream store wiped under running peels, a
// new master bootstrapping it) every entry is back without an operator and
// long before the basket interval (10m here): a reconnect wakes the
// publisher, which finds its revisions gone. An entry deleted while the
// peel stays connected comes back within the interval.
func TestBasket_RebuildAndDeleteRepopulate(t *testing.T) {
	s, h, url := basketSetup(t)
	ids := []string{"a.example.com", "b.example.com"}
	for _, id := range ids {
		c := peeltest.Config(t, id, url)
		c.Basket = map[string]peel.BasketSpec{"ipv4": spec("network.ipv4"), "alive": spec("test.ping")}
		c.BasketInterval = config.Dur(10 * time.Minute)
		peeltest.Start(t, c)
	}
	kv, _ := basketKV(t, url)
	for _, id := range ids {
		waitEntry(t, kv, id, "ipv4", 30*time.Second)
		waitEntry(t, kv, id, "alive", 30*time.Second)
	}
	s.Shutdown()
	if err := errors.Join(os.RemoveAll(s.Options().StoreDir), s.Restart()); err != nil {
		t.Fatal(err)
	}
	wiped := time.Now()
	select {
	case <-h.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("master did not notice the wiped store")
	}
	mastertest.Start(t, mastertest.Config("m1", url))
	kv, _ = basketKV(t, url)
	for _, id := range ids {
		waitEntry(t, kv, id, "ipv4", 60*time.Second)
		waitEntry(t, kv, id, "alive", 60*time.Second)
	}
	t.Logf("REBUILD: every basket entry back %s after the wipe (basket_interval 10m)", time.Since(wiped).Round(time.Millisecond))
	// The CLI resolves '*' with the new master's index, which is whole
	// once both peels' facts are republished too (their own spread delay):
	// wait for that, then both rows must be there.
	var code int
	var out, errOut string
	testkit.Eventually(t, "basket get '*' after the rebuild lists both peels", 60*time.Second, func() bool {
		code, out, errOut = zcli(t, url, "", "basket", "get", "*", "alive")
		return code == 0 && hasRow(out, "a.example.com", "true") && hasRow(out, "b.example.com", "true")
	})
	if code != 0 {
		t.Fatalf("basket get after the rebuild: %d\n%s%s", code, out, errOut)
	}

	// Deleted under a connected peel: only the interval's check sees it.
	const id = "c.example.com"
	c := peeltest.Config(t, id, url)
	c.Basket = map[string]peel.BasketSpec{"alive": spec("test.ping")}
	c.BasketInterval = config.Dur(2 * time.Second)
	peeltest.Start(t, c)
	waitEntry(t, kv, id, "alive", 30*time.Second)
	if err := kv.Delete(context.Background(), names.BasketKey(id, "alive")); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	waitEntry(t, kv, id, "alive", 30*time.Second)
	t.Logf("DELETE: entry back %s after its deletion (basket_interval 2s)", time.Since(deleted).Round(time.Millisecond))
}

// Entries that cannot be published are reported, not written: a value over
// basket_max_value and a failing function each give a basket-error event
// naming the entry and the cause, and leave no key; the good entry next to
// them is written. Bad settings entries are refused with every cause named.
func TestBasket_BadEntriesReported(t *testing.T) {
	_, _, url := basketSetup(t)
	const id = "d.example.com"
	c := peeltest.Config(t, id, url)
	c.BasketMaxValue = config.Bytes(1 << 10)
	c.Basket = map[string]peel.BasketSpec{
		"big":  spec("test.echo", strings.Repeat("x", 2000)),
		"gone": spec("file.read", filepath.Join(t.TempDir(), "absent")),
		"ok":   spec("test.ping"),
	}
	p := peeltest.Start(t, c)
	kv, js := basketKV(t, url)
	waitEntry(t, kv, id, "ok", 30*time.Second)

	awaitPeelEvents(t, js, id, "basket-error", 30*time.Second, []string{
		"basket entry big: function test.echo: value of 2002 bytes exceeds basket_max_value (1024 bytes)",
		"basket entry gone: function file.read:",
	}, strings.HasPrefix)
	for _, name := range []string{"big", "gone"} {
		if be, _ := entryOf(kv, id, name); be != nil {
			t.Errorf("entry %s written: %+v", name, be)
		}
	}
	err := p.SetBasketFuncs(map[string]peel.BasketSpec{"x.y": spec("test.ping"), "z": spec("test.pong"), "w": {}})
	for _, w := range []string{`invalid basket name "x.y"`, `settings basket.z: unknown function "test.pong"`, "settings basket.w: no function"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("SetBasketFuncs: %v, want %q", err, w)
		}
	}
}
