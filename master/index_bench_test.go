package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/factgen"
	"github.com/zester-io/zester/internal/target"
)

// The fact index at fleet sizes, fed directly (no server): what the master
// holds per peel, and what resolving a target costs. Fact documents are this
// generated host's (internal/factgen, the load generator's), varied per peel where hosts differ: id,
// machine id, addresses, MACs, OS release and kernel among four families.

type benchEntry struct {
	key string
	val []byte
	rev uint64
}

func (e *benchEntry) Key() string                     { return e.key }
func (e *benchEntry) Value() []byte                   { return e.val }
func (e *benchEntry) Revision() uint64                { return e.rev }
func (e *benchEntry) Created() time.Time              { return time.Time{} }
func (e *benchEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

var benchOS = []struct{ id, name, version, kernel string }{
	{"debian", "Debian GNU/Linux", "12", "6.1.0-%d-amd64"},
	{"ubuntu", "Ubuntu", "22.04", "5.15.0-%d-generic"},
	{"rocky", "Rocky Linux", "9.3", "5.14.0-%d.el9.x86_64"},
	{"alpine", "Alpine Linux", "3.19.1", "6.6.%d-0-lts"},
}

var benchDocsCache struct {
	sync.Mutex
	ids  []string
	vals [][]byte
}

// benchDocs returns n encoded fact documents and their peel ids, made once
// per test binary (encoding 100,000 takes a while).
func benchDocs(tb testing.TB, n int) (ids []string, vals [][]byte) {
	c := &benchDocsCache
	c.Lock()
	defer c.Unlock()
	if len(c.ids) < n {
		c.ids, c.vals = makeBenchDocs(tb, n)
	}
	return c.ids[:n], c.vals[:n]
}

func makeBenchDocs(tb testing.TB, n int) (ids []string, vals [][]byte) {
	// One generated host (internal/factgen, the load generator's facts)
	// as the template: master tests do not import the peel's collector.
	base, err := factgen.Gen(0, "@ID@", time.Unix(1_700_000_000, 0)).JSON()
	if err != nil {
		tb.Fatal(err)
	}
	var doc map[string]any
	json.Unmarshal(base, &doc)
	doc["id"] = "@ID@"
	os, _ := doc["os"].(map[string]any)
	if os == nil {
		os = map[string]any{}
		doc["os"] = os
	}
	os["id"], os["name"], os["version_id"] = "@OSID@", "@OSNAME@", "@OSVER@"
	if k, ok := doc["kernel"].(map[string]any); ok {
		k["release"] = "@KERNEL@"
	}
	if h, ok := doc["host"].(map[string]any); ok {
		h["machine_id"], h["hostname"] = "@MACHINE@", "@ID@"
	}
	if nw, ok := doc["network"].(map[string]any); ok {
		nw["addresses"] = []any{"@IP4@", "@IP6@"}
		if ifs, ok := nw["interfaces"].(map[string]any); ok {
			for _, v := range ifs {
				if m, ok := v.(map[string]any); ok {
					m["mac"] = "@MAC@"
				}
			}
		}
	}
	tmpl, _ := json.Marshal(doc)
	ids, vals = make([]string, n), make([][]byte, n)
	strided(n, runtime.GOMAXPROCS(0), func(_, i int) {
		o := benchOS[i%len(benchOS)]
		id := fmt.Sprintf("sim-%06d.dc%d.example.com", i, 1+i%3)
		r := strings.NewReplacer("@ID@", id, "@OSID@", o.id, "@OSNAME@", o.name, "@OSVER@", o.version,
			"@KERNEL@", fmt.Sprintf(o.kernel, 10+i%20), "@MACHINE@", fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15),
			"@IP4@", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "@IP6@", fmt.Sprintf("fd00::%x", i),
			"@MAC@", fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255))
		ids[i], vals[i] = id, factcodec.Encode([]byte(r.Replace(string(tmpl))))
	})
	return ids, vals
}

func benchMaster(tb testing.TB) *Master {
	cfg := DefaultConfig()
	cfg.ID, cfg.Insecure = "bench", true
	m, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIndexMemory reports the master's heap per peel: indexed in an
// owned partition (its facts held, no index.fact_paths), known in a
// partition another master owns (id only), in an active job (its part's
// tracker, all returned), the values a -G target caches, and the values of
// index.fact_paths at its default.
// Run with -benchtime=1x.
func BenchmarkIndexMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ids, vals := benchDocs(b, n)
			docBytes := 0
			for _, v := range vals {
				docBytes += len(v)
			}
			for b.Loop() {
				m := benchMaster(b)
				benchSetPaths(m, []string{})
				h0 := heapNow()
				m.index = newFactIndex(m)
				// Each value a fresh copy, as each message of the watch is.
				for i := range ids {
					m.index.apply(&benchEntry{key: ids[i], val: bytes.Clone(vals[i]), rev: uint64(i + 1)})
				}
				h1 := heapNow()
				// A -G job caches the values it looks at (os:id, and os for
				// the reading "id:debian" of the os map).
				g, _ := target.Parse(target.KindFact, "os:id:debian", target.Options{})
				for p := range m.cfg.Partitions {
					m.index.resolve(p, g)
				}
				hG := heapNow()
				trs := make([]*tracker, m.cfg.Partitions)
				byPart := make([][]string, m.cfg.Partitions)
				for p := range byPart {
					// Sorted, as resolve lists a part's peels.
					byPart[p] = slices.Sorted(slices.Values(m.index.ids(p)))
				}
				h2 := heapNow()
				for p, pids := range byPart {
					trs[p] = newTracker(pids, 0)
					for _, id := range pids {
						trs[p].record(id, true)
					}
				}
				h3 := heapNow()
				// The same peels known only: every partition another master's.
				m2 := benchMaster(b)
				m2.member = &membership{}
				m2.index = newFactIndex(m2)
				for i := range ids {
					m2.index.apply(&benchEntry{key: ids[i], val: bytes.Clone(vals[i]), rev: uint64(i + 1)})
				}
				h4 := heapNow()
				// The same peels owned, index.fact_paths at its default.
				m3 := benchMaster(b)
				benchSetPaths(m3, benchDefaultPaths())
				m3.index = newFactIndex(m3)
				for i := range ids {
					m3.index.apply(&benchEntry{key: ids[i], val: bytes.Clone(vals[i]), rev: uint64(i + 1)})
				}
				h5 := heapNow()
				b.ReportMetric(float64(h1-h0)/float64(n), "B/peel-indexed")
				b.ReportMetric(float64(hG-h1)/float64(n), "B/peel-G-cache")
				b.ReportMetric(float64(docBytes)/float64(n), "B/peel-doc")
				b.ReportMetric(float64(h3-h2)/float64(n), "B/peel-in-job")
				b.ReportMetric(float64(h4-h3)/float64(n), "B/peel-known")
				b.ReportMetric(float64(int64(h5-h4)-int64(h1-h0))/float64(n), "B/peel-default-paths")
				runtime.KeepAlive(trs)
				runtime.KeepAlive(byPart)
				runtime.KeepAlive(m.index)
				runtime.KeepAlive(m2.index)
				runtime.KeepAlive(m3.index)
			}
		})
	}
}

// BenchmarkResolve100k resolves a target over every partition of a master
// that owns 100,000 peels: the target-dependent part of submit → dispatch
// (the rest, writing the parts and publishing the job, does not depend on
// the target). BenchmarkResolve1M is the same at 1,000,000 (about 1.5 GB of
// heap; run it alone, -benchtime=3x).
//
// Per index.fact_paths (none, the default), first-ms is the first job that
// looks at the target's fact paths, which scans the documents that arrived
// before they were registered (none for a configured path); ns/op the jobs
// after it, which match cached values. Beside them: intake-us, applying
// one document (what the fact watch does per update), and the raw baseline
// of the same run, decode-ms: decoding every document once, bare (one
// core), and the same on every core.
func BenchmarkResolve100k(b *testing.B) { benchResolve(b, 100_000) }

func BenchmarkResolve1M(b *testing.B) { benchResolve(b, 1_000_000) }

func benchResolve(b *testing.B, n int) {
	ids, vals := benchDocs(b, n)
	b.Run("decode-all", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			start := time.Now()
			for _, v := range vals {
				var err error
				if buf, err = factcodec.DecodeAppend(buf[:0], v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "decode-ms")
		}
	})
	b.Run("decode-all-cores", func(b *testing.B) {
		for b.Loop() {
			start := time.Now()
			// The first job's scan spreads the same way (fillValues).
			workers := runtime.GOMAXPROCS(0)
			bufs := make([][]byte, workers)
			strided(len(vals), workers, func(w, i int) {
				bufs[w], _ = factcodec.DecodeAppend(bufs[w][:0], vals[i])
			})
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "decode-ms")
		}
	})
	// One peel in four runs each OS; sim-00* is the first 10,000.
	scale := n / 100_000
	for _, pc := range []struct {
		name  string
		paths []string
	}{{"paths=none", []string{}}, {"paths=default", benchDefaultPaths()}} {
		m := benchMaster(b)
		benchSetPaths(m, pc.paths)
		m.index = newFactIndex(m)
		start := time.Now()
		for i := range ids {
			m.index.apply(&benchEntry{key: ids[i], val: vals[i], rev: uint64(i + 1)})
		}
		intake := time.Since(start)
		for _, c := range []struct {
			name string
			kind target.Kind
			expr string
			want int
		}{
			{"star", target.KindGlob, "*", n},
			{"glob", target.KindGlob, "sim-001*", 1000},
			{"grain", target.KindFact, "os:id:debian", 25_000 * scale},
			{"compound", target.KindCompound, "G@os:id:rocky and sim-00* and not S@10.0.0.0/24", 2436},
		} {
			b.Run(pc.name+"/"+c.name, func(b *testing.B) {
				e, err := target.Parse(c.kind, c.expr, target.Options{})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for p := range m.cfg.Partitions {
					m.index.resolve(p, e)
				}
				first := time.Since(start)
				got := 0
				for b.Loop() {
					got = 0
					for p := range m.cfg.Partitions {
						got += len(m.index.resolve(p, e))
					}
				}
				if c.want >= 0 && got != c.want {
					b.Fatalf("%s matched %d peels, want %d", c.expr, got, c.want)
				}
				b.ReportMetric(float64(got), "matched")
				b.ReportMetric(float64(first.Milliseconds()), "first-ms")
				b.ReportMetric(float64(intake.Microseconds())/float64(n), "intake-us")
			})
		}
		m.index = nil
		runtime.GC()
	}
}
