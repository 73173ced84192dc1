package names

// Names of the settings layer (issue 12): the per-peel keys of the
// settings-files and secrets buckets, and the header that carries an
// entry's content hash.
//
// Layout: one settings-files entry and one secrets entry per peel, both
// under the peel's plain id. The settings-files entry holds the sanitized
// templates the masters chose for that peel from top.zy (with their merge
// order); the secrets entry holds that peel's values sealed to its curve
// key. A peel's credentials grant exactly these two keys (one direct get
// each, pki.PeelPermissions), so they never change when top.zy does, and no
// wildcard grant lets a peel fetch "the last entry matching" another key
// (a direct get with '*' in the subject answers the newest match).

// SettingsFilesKey is the settings-files key of a peel's templates: its
// plain id.
func SettingsFilesKey(id string) string { return id }

// HeaderContentHash is the header with which the masters store the hash of
// a settings-files or secrets entry's content (for a secrets entry, a keyed
// hash of the plaintext, never a plain one: a secret may be guessable). A
// master reads the headers alone (a headers-only consumer) to learn which
// entries are current without fetching their values.
const HeaderContentHash = "Zester-Hash"

// HeaderSettingsInput is the header with which the masters store a keyed
// hash of what an entry was rendered from (the applicable files' content
// hashes, the facts, the peel's curve key): a master that finds it equal to
// the same hash of its current inputs knows the entry is current without
// rendering the peel (docs/settings.md). Absent when the render is not a
// function of those inputs alone (it used the basket).
const HeaderSettingsInput = "Zester-Input"

// HeaderSettingsFiles is the header with which the masters store, on a
// settings-files entry, the names of the settings files it applied
// (path-escaped, comma-separated): which peels a changed file touches,
// known from the headers alone after a master restart.
const HeaderSettingsFiles = "Zester-Files"

// HeaderSettingsSecrets is the header with which the masters store, on a
// settings-files entry, the content hash of the secrets entry rendered with
// it: the pair is current only when the secrets entry holds that hash.
const HeaderSettingsSecrets = "Zester-Secrets-Hash"

// SettingsEventSubject is the subject of a settings event (a template that
// does not load or render, kind "settings.error") in the job-events
// stream, next to the job and peel events.
func SettingsEventSubject(kind string) string { return Root + ".events.settings." + kind }
