package topology

import "syscall"

// childAttr makes the kernel kill the server when this process dies, so
// that an interrupted load run leaves no server behind.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
