package names

import (
	"crypto/rand"
	"fmt"
	"time"
)

// JIDLen is the length of a job id made by NewJID.
const JIDLen = 22

// NewJID returns a Salt-style job id: the UTC time to the microsecond, then
// two random digits so two submitters in the same microsecond rarely
// collide (a collision is caught: job records are created, never
// overwritten). The CLI chooses the id of the job it submits, so that a
// job.run it has to send again after a lost answer cannot create a second
// job; a master chooses one when the request carries none.
func NewJID(now time.Time) string {
	var b [1]byte
	rand.Read(b[:])
	now = now.UTC()
	return fmt.Sprintf("%s%06d%02d", now.Format("20060102150405"), now.Nanosecond()/1000, int(b[0])%100)
}

// ValidateJID checks a job id chosen by a client: NewJID's shape, 22 digits
// that start with a valid UTC time.
func ValidateJID(jid string) error {
	if len(jid) != JIDLen {
		return fmt.Errorf("jid %q: want %d digits (UTC time to the microsecond and two random digits), got %d characters", jid, JIDLen, len(jid))
	}
	for i := 0; i < len(jid); i++ {
		if jid[i] < '0' || jid[i] > '9' {
			return fmt.Errorf("jid %q: character %q at column %d is not a digit", jid, jid[i], i+1)
		}
	}
	if _, err := time.Parse("20060102150405", jid[:14]); err != nil {
		return fmt.Errorf("jid %q: does not start with a time (YYYYmmddHHMMSS): %w", jid, err)
	}
	return nil
}
