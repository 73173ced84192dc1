package settings_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/settings/settingstest"
)

func benchTree(b *testing.B, pub string) map[string]string {
	t, err := settingstest.Tree(pub)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// BenchmarkCompile compiles a realistic tree for 10,000 simulated peels
// (one op = one peel); BenchmarkFactsDecode is the baseline the master
// already pays per peel: decoding its fact document.
func BenchmarkCompile(b *testing.B) {
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	tr, err := settings.Load(tree(benchTree(b, pub)), settings.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const peels = 10_000
	facts := make([]map[string]any, peels)
	for i := range facts {
		if err := json.Unmarshal(settingstest.Facts(i), &facts[i]); err != nil {
			b.Fatal(err)
		}
	}
	o := settings.Options{Secret: settings.CachingOpener(kp), Memo: settings.NewMemo()}
	// Check the tree once before timing.
	if res, err := tr.Compile("peel00001", facts[1], o); err != nil || len(res.Files) < 4 {
		b.Fatalf("%v %+v", err, res)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := i % peels
		if _, err := tr.Compile(fmt.Sprintf("peel%05d", p), facts[p], o); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFactsDecode(b *testing.B) {
	doc := settingstest.Facts(1)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealPerPeel is what the next slice adds per peel: sealing its
// opened values to its curve key in one box.
func BenchmarkSealPerPeel(b *testing.B) {
	master, _ := nkeys.CreateCurveKeys()
	peel, _ := nkeys.CreateCurveKeys()
	peelPub, _ := peel.PublicKey()
	vals, _ := json.Marshal(map[string]string{"zsr1:aaaaaaaaaaaaaaaaaaaaaa": "monitoring-token-123", "zsr1:bbbbbbbbbbbbbbbbbbbbbb": "db-password-456"})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := master.Seal(vals, peelPub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenToken is one token opened without the cache.
func BenchmarkOpenToken(b *testing.B) {
	kp, _ := nkeys.CreateCurveKeys()
	pub, _ := kp.PublicKey()
	tok, _ := settings.Seal(pub, []byte("value"))
	for i := 0; i < b.N; i++ {
		if _, err := settings.Open(kp, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMasterPerPeel is what a master does per peel after a settings
// change, without the store: decode the stored facts, compile, the masked
// JSON and its hash, the bundle, the values, their keyed hash, and the seal
// (one op = one peel).
func BenchmarkMasterPerPeel(b *testing.B) {
	kp, _ := nkeys.CreateCurveKeys()
	pub, _ := kp.PublicKey()
	tr, err := settings.Load(tree(benchTree(b, pub)), settings.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	const peels = 1000
	raws := make([][]byte, peels)
	curves := make([]string, peels)
	for i := range raws {
		raws[i] = factcodec.Encode(settingstest.Facts(i))
		c, _ := nkeys.CreateCurveKeys()
		curves[i], _ = c.PublicKey()
	}
	open := settings.CachingOpener(kp)
	memo := settings.NewMemo()
	sealer, _ := settings.NewSealer(kp)
	key := []byte("k")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := i % peels
		doc, _ := factcodec.Decode(raws[p])
		f, err := render.ParseFacts(doc)
		if err != nil {
			b.Fatal(err)
		}
		res, err := tr.Compile(fmt.Sprintf("peel%05d", p), f, settings.Options{Secret: open, Memo: memo, FactsNormalized: true})
		if err != nil {
			b.Fatal(err)
		}
		masked, _ := json.Marshal(res.Masked())
		bundle, _ := tr.BundleWith(res, settings.SettingsHashOf(masked))
		bj, _ := json.Marshal(bundle)
		_ = settings.SettingsHashOf(bj)
		vals, _ := res.Values(open)
		_ = settings.ValuesHash(key, curves[p], vals)
		if _, err := sealer.SealValues(curves[p], vals); err != nil {
			b.Fatal(err)
		}
	}
}
