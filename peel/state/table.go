package state

import (
	"github.com/zester-io/zester/peel/state/cmd"
	"github.com/zester-io/zester/peel/state/file"
	"github.com/zester-io/zester/peel/state/mod"
	"github.com/zester-io/zester/peel/state/pkg"
	"github.com/zester-io/zester/peel/state/service"
	"github.com/zester-io/zester/peel/state/user"
)

// DefaultTable holds every state module Zester ships. Each module package
// adds its functions with Register.
func DefaultTable() *mod.Table {
	t := mod.NewTable()
	file.Register(t)
	cmd.Register(t)
	pkg.Register(t)
	service.Register(t)
	user.Register(t)
	return t
}
