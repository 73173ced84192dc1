//go:build !unix

package topology

// checkStoreDir is a no-op where there is no access(2): nats-server's own
// check (at start) applies.
func checkStoreDir(string) error { return nil }
