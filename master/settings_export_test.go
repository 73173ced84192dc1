package master

// SetFollowPause makes every render batch of at least min peels pause the
// settings store's followers, and runs hook (when not nil) right after each
// pause; restore undoes it. Not for parallel tests.
func SetFollowPause(min int, hook func()) (restore func()) {
	oldMin, oldHook := followPauseMin, afterFollowPause
	followPauseMin, afterFollowPause = min, hook
	return func() { followPauseMin, afterFollowPause = oldMin, oldHook }
}
