package state

import (
	"github.com/zester-io/zester/peel/state/cmd"
	"github.com/zester-io/zester/peel/state/file"
	"github.com/zester-io/zester/peel/state/mod"
)

// DefaultTable holds every state module Zester ships. Each module package
// adds its functions with Register.
func DefaultTable() *mod.Table {
	t := mod.NewTable()
	file.Register(t)
	cmd.Register(t)
	return t
}
