package names

import (
	"fmt"
	"strings"
)

// Schedule event kinds: a peel's scheduled runs (peel.yaml schedule:) publish
// under its own event subject (PeelEventSubject), so the peel's existing
// grant covers them and the job-events stream keeps them.
//
//	zester.events.peel.<id token>.schedule.<entry>  every finished run
//	zester.events.peel.<id token>.drift.<entry>     runs whose states changed something
//
// The entry name is one subject token (ValidateScheduleName), so "the latest
// run of entry E on peel P" is the last message of one subject, and "the
// latest run of every entry of every peel" is one last-per-subject read of
// ScheduleEventFilter("*", "*").
const (
	scheduleKind = "schedule"
	driftKind    = "drift"
)

// MaxScheduleNameLen bounds a schedule entry's name.
const MaxScheduleNameLen = 64

// ValidateScheduleName checks a schedule entry name: 1–64 letters, digits,
// '-' and '_' (one subject token, no wildcard, no '.').
func ValidateScheduleName(name string) error {
	if name == "" {
		return fmt.Errorf("schedule entry name: empty")
	}
	if len(name) > MaxScheduleNameLen {
		return fmt.Errorf("schedule entry name %.20q…: longer than %d characters", name, MaxScheduleNameLen)
	}
	for i, c := range name {
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("schedule entry name %q: character %q at column %d is not allowed (letters, digits, '-' and '_')", name, c, i+1)
		}
	}
	return nil
}

// ScheduleEventSubject is where peel id publishes each finished run of its
// schedule entry.
func ScheduleEventSubject(id, entry string) string {
	return PeelEventSubject(id, scheduleKind+"."+entry)
}

// ScheduleDriftSubject is where peel id publishes a run of entry whose
// states changed something (drift).
func ScheduleDriftSubject(id, entry string) string {
	return PeelEventSubject(id, driftKind+"."+entry)
}

// ScheduleEventFilter selects scheduled-run events; id and entry may be "*"
// (every peel, every entry).
func ScheduleEventFilter(id, entry string) string {
	return ScheduleEventSubject(id, entry)
}

// ScheduleDriftFilter selects drift events; id and entry may be "*".
func ScheduleDriftFilter(id, entry string) string {
	return ScheduleDriftSubject(id, entry)
}

// ParseScheduleSubject reads the peel id and entry of a schedule or drift
// event subject; ok is false for any other subject.
func ParseScheduleSubject(subject string) (id, entry string, drift, ok bool) {
	const prefix = Root + ".events.peel."
	rest, found := strings.CutPrefix(subject, prefix)
	if !found {
		return "", "", false, false
	}
	tok, rest, found := strings.Cut(rest, ".")
	if !found || tok == "" {
		return "", "", false, false
	}
	kind, entry, found := strings.Cut(rest, ".")
	if !found || ValidateScheduleName(entry) != nil {
		return "", "", false, false
	}
	switch kind {
	case scheduleKind:
	case driftKind:
		drift = true
	default:
		return "", "", false, false
	}
	return FromToken(tok), entry, drift, true
}
