//go:build !linux

package topology

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
