package cli

import (
	"context"

	"github.com/zester-io/zester/internal/wire"
)

func (a *app) runBatch(ctx context.Context, f *runFlags, req wire.RunRequest) error {
	return withCode(ExitError, errBatchUnsupported)
}

var errBatchUnsupported = errorString("--batch: rolling batches are not built yet (issue 4)")

type errorString string

func (e errorString) Error() string { return string(e) }
