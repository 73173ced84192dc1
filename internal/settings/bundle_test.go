package settings_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/settings"
)

// The masters' half and the peel's half of one render: the peel, from the
// sanitized bundle and its opened values alone, gets exactly the settings
// the master compiled; the bundle holds no token and no plaintext, the
// sealed entry opens only with the peel's key and only as its own.
func TestBundle_PeelRendersWhatTheMasterRendered(t *testing.T) {
	mkp, mpub := curveKey(t)
	pkp, ppub := curveKey(t)
	const pw = "db-PASSWORD-plain"
	tok := seal(t, mpub, pw)
	files := map[string]string{
		"top.zy":       "'*': [common]\n'web*': [web, web.nginx]\n'db*': [db]\n",
		"common.zy":    "domain: example.com\npackages: [vim]\n",
		"web/init.zy":  fmt.Sprintf("site: {{ .id }}.{{ setting \"domain\" }}\ndb: {password: {{ secret %q }}}\npackages: !append [nginx]\n", tok),
		"web/nginx.zy": "workers: {{ .facts.cpus }}\n",
		"db.zy":        "never: here\n",
	}
	tr, err := settings.Load(tree(files), settings.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	facts := map[string]any{"cpus": 4}
	open := settings.CachingOpener(mkp)
	res, err := tr.Compile("web1", facts, settings.Options{Secret: open})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Bundle(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 3 || b.Files[0].Name != "common" || b.Files[2].Path != "web/nginx.zy" {
		t.Fatalf("bundle files %+v", b.Files)
	}
	bj, _ := json.Marshal(b)
	// BundleJSON (files marshalled once per list) is the same bytes, for
	// this peel and for another with the same list (the cached part).
	for _, id := range []string{"web1", "web2<&>"} {
		r := *res
		r.ID = id
		want, _ := json.Marshal(&settings.Bundle{V: b.V, ID: id, Files: b.Files, Settings: b.Settings})
		if got, err := tr.BundleJSON(&r, b.Settings); err != nil || string(got) != string(want) {
			t.Fatalf("BundleJSON %s %v, want %s", got, err, want)
		}
	}
	if strings.Contains(string(bj), pw) || strings.Contains(string(bj), tok) || strings.Contains(string(bj), "db.zy") || !strings.Contains(string(bj), settings.Ref(tok)) {
		t.Fatalf("bundle holds a token, a plaintext or a file of other peels, or lacks the reference: %s", bj)
	}
	vals, err := res.Values(open)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := settings.SealValues(ppub, vals)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, pw) {
		t.Fatal("plaintext in the sealed entry")
	}
	// Another peel's key, or the entry under another id, does not open.
	other, _ := curveKey(t)
	if _, err := settings.OpenValues(other, "web1", []byte(sealed)); !errors.Is(err, settings.ErrWrongKey) {
		t.Fatalf("opened with another peel's key: %v", err)
	}
	if _, err := settings.OpenValues(pkp, "web2", []byte(sealed)); err == nil || !strings.Contains(err.Error(), `holds the values of "web1"`) {
		t.Fatalf("opened as another peel's: %v", err)
	}
	got, err := settings.OpenValues(pkp, "web1", []byte(sealed))
	if err != nil {
		t.Fatal(err)
	}
	// The peel's side.
	var pb settings.Bundle
	if err := json.Unmarshal(bj, &pb); err != nil {
		t.Fatal(err)
	}
	pt, err := settings.LoadBundle(&pb)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := pt.Compile("web1", facts, settings.Options{Secret: settings.RefOpener(got)})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := toJSON(t, pres.Revealed()), toJSON(t, res.Revealed()); a != b || !strings.Contains(a, pw) {
		t.Fatalf("peel render %s, master render %s", a, b)
	}
	if h, _ := pres.SettingsHash(); h != pb.Settings {
		t.Fatalf("settings hash %s, bundle says %s", h, pb.Settings)
	}
	// Without its values the peel's render names the missing secret.
	if _, err := pt.Compile("web1", facts, settings.Options{Secret: settings.RefOpener(nil)}); err == nil || !strings.Contains(err.Error(), "not in this peel's secrets entry") {
		t.Fatalf("render without values: %v", err)
	}
	// The keyed hash changes with a value and with the peel's key.
	key := []byte("k")
	h1 := settings.ValuesHash(key, ppub, vals)
	vals.Values[settings.Ref(tok)] = "other"
	if h2 := settings.ValuesHash(key, ppub, vals); h2 == h1 || settings.ValuesHash(key, mpub, vals) == h2 {
		t.Fatal("values hash does not follow the values or the key")
	}
}

func TestLoadBundle_Refuses(t *testing.T) {
	for _, tc := range []struct {
		b    settings.Bundle
		want string
	}{
		{settings.Bundle{V: 2, ID: "a"}, "version 2"},
		{settings.Bundle{V: 1, ID: "a", Files: []settings.BundleFile{{Name: "x", Path: "../x.zy"}}}, "bad path"},
		{settings.Bundle{V: 1, ID: "a", Files: []settings.BundleFile{{Name: "y", Path: "x.zy"}}}, `is not file "y"`},
		{settings.Bundle{V: 1, ID: "a", Files: []settings.BundleFile{{Name: "x", Path: "x.zy", Text: "a: {{"}}}, "x.zy:1"},
	} {
		if _, err := settings.LoadBundle(&tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.b, err, tc.want)
		}
	}
}

// A Sealer's tokens open as Seal's do, with the peel's key only, and each
// seal is a fresh box.
func TestSealer_OpensLikeSeal(t *testing.T) {
	mkp, _ := curveKey(t)
	pkp, ppub := curveKey(t)
	s, err := settings.NewSealer(mkp)
	if err != nil {
		t.Fatal(err)
	}
	v := &settings.Values{V: 1, ID: "web1", Values: map[string]string{"zsr1:x": "plain"}}
	a, err := s.SealValues(ppub, v)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.SealValues(ppub, v)
	if a == b || strings.Contains(a, "plain") {
		t.Fatal("two seals are the same box, or hold the plaintext")
	}
	got, err := settings.OpenValues(pkp, "web1", []byte(a))
	if err != nil || got.Values["zsr1:x"] != "plain" {
		t.Fatalf("open: %v %v", got, err)
	}
	other, _ := curveKey(t)
	if _, err := settings.OpenValues(other, "web1", []byte(b)); !errors.Is(err, settings.ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := s.Seal("Xnope", []byte("x")); err == nil {
		t.Fatal("sealed to a bad key")
	}
	// The box itself is bound to the peel's key: the token relabelled
	// with another key's fingerprint gets past the fingerprint check and
	// fails in nkeys' Open.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(a, settings.TokenPrefix))
	if err != nil {
		t.Fatal(err)
	}
	opub, _ := other.PublicKey()
	ofp, _ := settings.Fingerprint(opub)
	fp, _ := hex.DecodeString(ofp)
	copy(raw, fp)
	relabelled := settings.TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	if _, err := settings.OpenValues(other, "web1", []byte(relabelled)); err == nil || errors.Is(err, settings.ErrWrongKey) {
		t.Fatalf("another key, relabelled token: %v", err)
	}
	// Many peels from one Sealer: each one's token opens with its key.
	for range 3 {
		k, pub := curveKey(t)
		tok, err := s.SealValues(pub, v)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := settings.OpenValues(k, "web1", []byte(tok)); err != nil || got.Values["zsr1:x"] != "plain" {
			t.Fatalf("peel %s: %v %v", pub, got, err)
		}
	}
}

// The values' JSON marshalled once serves the hash and the seal: the same
// hash as ValuesHash, a token OpenValues opens with the peel's key; the
// sealer's key count follows Warm and Forget.
func TestSealer_ValuesJSON(t *testing.T) {
	mkp, _ := curveKey(t)
	pkp, ppub := curveKey(t)
	s, err := settings.NewSealer(mkp)
	if err != nil {
		t.Fatal(err)
	}
	v := &settings.Values{V: 1, ID: "web1", Values: map[string]string{"zsr1:b": "two", "zsr1:a": "<one&>"}}
	j, err := settings.ValuesJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("values hash key")
	if got, want := settings.ValuesHashJSON(key, ppub, j), settings.ValuesHash(key, ppub, v); got != want {
		t.Fatalf("ValuesHashJSON %s, ValuesHash %s", got, want)
	}
	if s.Len() != 0 || s.Has(ppub) {
		t.Fatalf("a new sealer holds %d keys", s.Len())
	}
	tok, err := s.SealValuesJSON(ppub, v.ID, j)
	if err != nil {
		t.Fatal(err)
	}
	got, err := settings.OpenValues(pkp, "web1", []byte(tok))
	if err != nil || got.Values["zsr1:a"] != "<one&>" || got.Values["zsr1:b"] != "two" {
		t.Fatalf("open: %v %v", got, err)
	}
	if s.Len() != 1 || !s.Has(ppub) {
		t.Fatalf("after a seal: %d keys, has %v", s.Len(), s.Has(ppub))
	}
	_, other := curveKey(t)
	if err := s.Warm(other); err != nil || s.Len() != 2 {
		t.Fatalf("warm: %v, %d keys", err, s.Len())
	}
	s.Forget(ppub)
	s.Forget(ppub)
	if s.Len() != 1 || s.Has(ppub) {
		t.Fatalf("after forget: %d keys, has %v", s.Len(), s.Has(ppub))
	}
	settings.ClearJSON(j)
	if strings.Contains(string(j), "two") {
		t.Fatal("ClearJSON left the plaintext")
	}
}
