package loadgen

import (
	"bytes"
	"fmt"
	"time"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"

	"github.com/zester-io/zester/internal/factcodec"
	"github.com/zester-io/zester/internal/factgen"
	"github.com/zester-io/zester/internal/simfleet"
)

// CompressionReport compares how fact documents (as the agent encodes them)
// shrink with factcodec (what is stored) and with zstd dictionaries built
// from this run's own samples (what a dictionary tuned to the documents
// reaches).
type CompressionReport struct {
	Samples      int     `json:"samples"`
	JSONBytes    float64 `json:"json_bytes_avg"`
	Factcodec    Codec   `json:"factcodec"`
	TrainedDict  Codec   `json:"trained_dict"`
	RawDict      Codec   `json:"raw_dict"`
	RawDictDocs  int     `json:"raw_dict_docs"`
	TrainedBytes int     `json:"trained_dict_bytes"`
	RawBytes     int     `json:"raw_dict_bytes"`
	Note         string  `json:"note,omitempty"`
}

// Codec is one way of encoding facts, measured on the samples.
type Codec struct {
	Name       string  `json:"name"`
	AvgBytes   float64 `json:"avg_bytes"`
	Ratio      float64 `json:"ratio"`
	EncodeUS   float64 `json:"encode_us_per_doc"`
	DecodeUS   float64 `json:"decode_us_per_doc"`
	RoundTrips bool    `json:"round_trips"`
}

// MeasureCompression encodes sample documents of peels trainFrom… (training
// set) and evalFrom… (evaluation set, disjoint) in the three ways.
func MeasureCompression(samples int) (*CompressionReport, error) {
	if samples < 50 {
		samples = 50
	}
	now := time.Now()
	train := make([][]byte, samples)
	eval := make([][]byte, samples)
	for i := range samples {
		train[i] = peelFacts(1_000_000+i, now)
		eval[i] = peelFacts(i*7+3, now) // a different set of peels
	}
	rep := &CompressionReport{Samples: samples}
	var raw int
	for _, d := range eval {
		raw += len(d)
	}
	rep.JSONBytes = float64(raw) / float64(len(eval))

	measure := func(name string, enc func([]byte) []byte, dec func([]byte) ([]byte, error)) Codec {
		c := Codec{Name: name, RoundTrips: true}
		outs := make([][]byte, len(eval))
		t := time.Now()
		total := 0
		for i, d := range eval {
			outs[i] = enc(d)
			total += len(outs[i])
		}
		c.EncodeUS = float64(time.Since(t).Microseconds()) / float64(len(eval))
		t = time.Now()
		for i, o := range outs {
			back, err := dec(o)
			if err != nil || !bytes.Equal(back, eval[i]) {
				c.RoundTrips = false
			}
		}
		c.DecodeUS = float64(time.Since(t).Microseconds()) / float64(len(eval))
		c.AvgBytes = float64(total) / float64(len(eval))
		c.Ratio = float64(raw) / float64(total)
		return c
	}
	rep.Factcodec = measure("factcodec.Encode (as stored)", factcodec.Encode, factcodec.Decode)

	// A trained zstd dictionary (what `zstd --train` makes), 1 byte tag as
	// factcodec would add.
	trained, err := dict.BuildZstdDict(train, dict.Options{MaxDictSize: 64 << 10, HashBytes: 6, ZstdDictID: 0x2e57})
	if err != nil {
		rep.Note = fmt.Sprintf("trained dictionary: %v", err)
	} else {
		rep.TrainedBytes = len(trained)
		enc, err1 := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDict(trained))
		dec, err2 := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderDicts(trained))
		if err1 == nil && err2 == nil {
			rep.TrainedDict = measure("zstd + trained dictionary", func(b []byte) []byte { return enc.EncodeAll(b, []byte{0x02}) },
				func(b []byte) ([]byte, error) { return dec.DecodeAll(b[1:], nil) })
			dec.Close()
		}
	}

	// A raw dictionary: a few whole representative documents (different OS
	// families and CPU kinds) used as history.
	var rawDict []byte
	docs := 0
	for i := 0; len(rawDict) < 48<<10 && i < len(train); i += max(len(train)/12, 1) {
		rawDict = append(rawDict, train[i]...)
		docs++
	}
	rep.RawBytes, rep.RawDictDocs = len(rawDict), docs
	enc, err1 := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1), zstd.WithEncoderDictRaw(0x2e58, rawDict))
	dec, err2 := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderDictRaw(0x2e58, rawDict))
	if err1 == nil && err2 == nil {
		rep.RawDict = measure("zstd + raw dictionary of sample documents", func(b []byte) []byte { return enc.EncodeAll(b, []byte{0x03}) },
			func(b []byte) ([]byte, error) { return dec.DecodeAll(b[1:], nil) })
		dec.Close()
	}
	return rep, nil
}

// peelFacts is the fact document simulated peel i publishes (the fleet's
// FleetConfig.Facts in run.go, for its default id).
func peelFacts(i int, now time.Time) []byte { return factgen.JSON(i, simfleet.PeelID(i), now) }
