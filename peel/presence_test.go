package peel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
)

// A second peel process with the id of a running one refuses to run, with
// an error naming the id; once the first is gone, the id is free again.
func TestPeel_SameIDTwice_SecondRefused(t *testing.T) {
	_, url := serverAndMaster(t)
	first := peeltest.Start(t, peeltest.Config(t, "clone.example.com", url))
	p, err := peel.New(peeltest.Config(t, "clone.example.com", url), peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = p.Run(ctx)
	var dup *peelproto.ErrDuplicate
	if !errors.As(err, &dup) || dup.Other.Instance != first.Instance() ||
		!strings.Contains(err.Error(), `another peel with id "clone.example.com" is online`) {
		t.Fatalf("second peel: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the check did not answer before the hang guard")
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	peeltest.Start(t, peeltest.Config(t, "clone.example.com", url))
}
