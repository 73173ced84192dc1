package master

import "time"

// SetResendSlack sets presence.resendTo's margin; restore undoes it. Not for
// parallel tests.
func SetResendSlack(d time.Duration) (restore func()) {
	old := resendSlack
	resendSlack = d
	return func() { resendSlack = old }
}
