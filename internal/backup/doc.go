// Package backup backs up, verifies and restores Zester's JetStream state, and
// purges the data that the seed's "Purging Old Data" section names.
//
// A backup directory holds one subdirectory per stream, named after the
// stream, in exactly the layout that `nats stream backup STREAM DIR` writes
// (jsm.go's SnapshotToDirectory): backup.json (the stream's config and state)
// beside the s2-compressed archive. With a 2.15 server that archive is
// stream.arc.s2 in the NATSARC1 format; older servers send a tar and jsm.go
// names it stream.tar.s2. Both are read here and either tool restores what the
// other wrote. Beside the stream directories sits manifest.json, Zester's
// record of what the backup holds (per stream: messages, bytes, sequences,
// subjects, and the size and sha256 of every file), which Verify checks before
// anything on a server changes. A directory without manifest.json (the seed's
// shell script) is accepted too: every subdirectory holding backup.json is a
// stream backup, and the stream's name comes from backup.json.
//
// Verify reads archives completely without a server: s2 framing and CRCs, the
// NATSARC1 entries (state.json first, ascending message sequences, and the end
// marker a 2.15 server writes last, so a truncation is found even where the s2
// framing happens to end cleanly), or the tar entries of the legacy format.
//
// The package reports through return values and callbacks; the zester CLI
// (internal/cli/backup.go) does the talking to operators.
package backup
