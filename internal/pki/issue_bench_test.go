package pki_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/pki"
)

// BenchmarkIssuePeel is the signing a master does per enrolled peel and per
// renewal.
func BenchmarkIssuePeel(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "pki")
	if _, err := pki.Init(dir, pki.InitOptions{}); err != nil {
		b.Fatal(err)
	}
	p, err := pki.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	spec := pki.PeelSpec{ID: "web1.example.com", Partitions: 64}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.IssuePeel(spec, pub, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}
