package settings

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"

	"github.com/nats-io/nkeys"
)

// What the masters publish for one peel, and what the peel renders from
// (docs/settings.md, "In JetStream"):
//
//   - a Bundle, the peel's settings-files entry: the sanitized templates
//     the masters chose for it from top.zy, in merge order. A sanitized
//     template holds references (zsr1:…), never a token or a plaintext.
//   - a Values, the peel's secrets entry: reference → plaintext for the
//     tokens its render opened, sealed to the peel's curve key as one
//     token (Seal), so the store holds only ciphertext.
//
// The peel renders the bundle with its own facts and its opened values;
// the masters render the same files with the facts in the fact index.

// BundleVersion is the format version of Bundle and Values.
const BundleVersion = 1

// Bundle is a peel's settings-files entry.
type Bundle struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Files are the settings files that apply, in merge order.
	Files []BundleFile `json:"files"`
	// Settings is the hash of the masked settings the masters rendered
	// (SettingsHash): equal on the peel when its facts are the ones the
	// masters saw.
	Settings string `json:"settings_hash"`
}

// BundleFile is one sanitized settings file.
type BundleFile struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Text string `json:"text"`
}

// Values is the plaintext of a peel's secrets entry.
type Values struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Values maps a token's reference (Ref) to its plaintext.
	Values map[string]string `json:"values"`
}

// Bundle returns the settings-files entry of the peel res was compiled
// for: the sanitized text of every file res applied, in order.
func (t *Tree) Bundle(res *Result) (*Bundle, error) {
	h, err := res.SettingsHash()
	if err != nil {
		return nil, err
	}
	return t.BundleWith(res, h)
}

// BundleWith is Bundle with the settings hash already computed (from the
// masked JSON the caller has anyway: SettingsHashOf).
func (t *Tree) BundleWith(res *Result, settingsHash string) (*Bundle, error) {
	b := &Bundle{V: BundleVersion, ID: res.ID, Files: make([]BundleFile, 0, len(res.Files)), Settings: settingsHash}
	for i, name := range res.Files {
		f, ok := t.files[name]
		if !ok || f.path != res.Paths[i] {
			return nil, fmt.Errorf("settings file %s: not in this tree (a result of another tree?)", name)
		}
		if f.sanErr != nil {
			return nil, f.sanErr
		}
		b.Files = append(b.Files, BundleFile{Name: name, Path: f.path, Text: string(f.sanitized)})
	}
	return b, nil
}

// BundleJSON is the JSON of BundleWith(res, settingsHash), with the files'
// part (the same for every peel that applies the same files) marshalled
// once per distinct list.
func (t *Tree) BundleJSON(res *Result, settingsHash string) ([]byte, error) {
	key := strings.Join(res.Files, "\x00")
	files, ok := t.bundleFiles.Load(key)
	if !ok {
		b, err := t.BundleWith(res, "")
		if err != nil {
			return nil, err
		}
		j, err := json.Marshal(b.Files)
		if err != nil {
			return nil, err
		}
		files, _ = t.bundleFiles.LoadOrStore(key, j)
	}
	id, err := json.Marshal(res.ID)
	if err != nil {
		return nil, err
	}
	hash, err := json.Marshal(settingsHash)
	if err != nil {
		return nil, err
	}
	fj := files.([]byte)
	out := make([]byte, 0, len(fj)+len(id)+len(hash)+48)
	out = append(out, `{"v":`...)
	out = strconv.AppendInt(out, BundleVersion, 10)
	out = append(append(append(out, `,"id":`...), id...), `,"files":`...)
	out = append(append(out, fj...), `,"settings_hash":`...)
	return append(append(out, hash...), '}'), nil
}

// SettingsHash is the hex SHA-256 of the masked settings as JSON (keys
// sorted): it changes when a setting does, and says nothing of a secret.
func (r *Result) SettingsHash() (string, error) {
	j, err := json.Marshal(r.Masked())
	if err != nil {
		return "", fmt.Errorf("settings of %s: %w", r.ID, err)
	}
	return SettingsHashOf(j), nil
}

// SettingsHashOf is SettingsHash of the masked settings' JSON.
func SettingsHashOf(maskedJSON []byte) string {
	sum := sha256.Sum256(maskedJSON)
	return hex.EncodeToString(sum[:])
}

// Values returns reference → plaintext for every token res opened. open
// is the Secret callback the compile used (it answers from its cache).
func (r *Result) Values(open func(string) (string, error)) (*Values, error) {
	v := &Values{V: BundleVersion, ID: r.ID, Values: make(map[string]string, len(r.Tokens))}
	for _, tok := range r.Tokens {
		p, err := open(tok)
		if err != nil {
			return nil, err
		}
		v.Values[Ref(tok)] = p
	}
	return v, nil
}

// SealValues seals v to the peel's curve public key: one token holding the
// JSON of v. The result is what the secrets entry stores.
func SealValues(peelCurve string, v *Values) (string, error) {
	return sealValuesWith(Seal, peelCurve, v)
}

func sealValuesWith(seal func(string, []byte) (string, error), peelCurve string, v *Values) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	tok, err := seal(peelCurve, j)
	if err != nil {
		return "", fmt.Errorf("seal the secrets of %s: %w", v.ID, err)
	}
	return tok, nil
}

// OpenValues opens a secrets entry with the peel's curve key pair and
// checks that it is this peel's.
func OpenValues(kp nkeys.KeyPair, id string, entry []byte) (*Values, error) {
	p, err := Open(kp, strings.TrimSpace(string(entry)))
	if err != nil {
		return nil, fmt.Errorf("secrets entry of %s: %w", id, err)
	}
	var v Values
	if err := json.Unmarshal(p, &v); err != nil {
		return nil, fmt.Errorf("secrets entry of %s: %w", id, err)
	}
	if v.ID != id {
		return nil, fmt.Errorf("secrets entry of %s: holds the values of %q", id, v.ID)
	}
	return &v, nil
}

// ValuesJSON is the plaintext a secrets entry seals: the JSON of v (map
// keys sorted: the same values, the same bytes). It is secret: the caller
// clears it when done (ClearJSON).
func ValuesJSON(v *Values) ([]byte, error) { return json.Marshal(v) }

// ClearJSON overwrites a plaintext made by ValuesJSON.
func ClearJSON(j []byte) { clear(j) }

// ValuesHashJSON is ValuesHash of v given as ValuesJSON(v).
func ValuesHashJSON(key []byte, peelCurve string, valuesJSON []byte) string {
	sum := ValuesDigestJSON(key, peelCurve, valuesJSON)
	return hex.EncodeToString(sum[:])
}

// ValuesDigestJSON is ValuesHashJSON's sum, not in hex.
func ValuesDigestJSON(key []byte, peelCurve string, valuesJSON []byte) [sha256.Size]byte {
	return ValuesDigestWith(hmac.New(sha256.New, key), peelCurve, valuesJSON)
}

// ValuesDigestWith is ValuesDigestJSON computed with mac, an HMAC-SHA256
// keyed with the digest's key (reset here), so that a caller digesting
// many peels can reuse one.
func ValuesDigestWith(mac hash.Hash, peelCurve string, valuesJSON []byte) [sha256.Size]byte {
	mac.Reset()
	mac.Write([]byte(peelCurve))
	mac.Write([]byte{0})
	mac.Write(valuesJSON)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	return sum
}

// ValuesHash is a keyed hash of what a secrets entry holds for the peel
// with curve key peelCurve: the masters compare it, in a header, with the
// entry they would write. Keyed, because a plain hash of a guessable
// secret would give it away.
func ValuesHash(key []byte, peelCurve string, v *Values) string {
	j, _ := json.Marshal(v) // map keys sorted: the same values, the same bytes
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(peelCurve))
	mac.Write([]byte{0})
	mac.Write(j)
	return hex.EncodeToString(mac.Sum(nil))
}

// LoadBundle makes a tree of a bundle: its files, and a top.zy that
// applies all of them in the bundle's order to any peel. The peel
// compiles it with its own facts and a Secret callback that answers
// references from its opened Values.
func LoadBundle(b *Bundle) (*Tree, error) {
	if b.V != BundleVersion {
		return nil, fmt.Errorf("settings bundle of %s: version %d, this peel reads %d (upgrade it)", b.ID, b.V, BundleVersion)
	}
	fsys := fstest.MapFS{}
	names := make([]string, 0, len(b.Files))
	for _, f := range b.Files {
		if !fs.ValidPath(f.Path) || !strings.HasSuffix(f.Path, Ext) || f.Path == TopFile {
			return nil, fmt.Errorf("settings bundle of %s: bad path %q", b.ID, f.Path)
		}
		if n, err := nameOf(f.Path); err != nil || n != f.Name {
			return nil, fmt.Errorf("settings bundle of %s: path %q is not file %q", b.ID, f.Path, f.Name)
		}
		if slices.Contains(names, f.Name) {
			return nil, fmt.Errorf("settings bundle of %s: file %s twice", b.ID, f.Name)
		}
		fsys[f.Path] = &fstest.MapFile{Data: []byte(f.Text)}
		names = append(names, f.Name)
	}
	top, _ := json.Marshal(map[string][]string{"*": names})
	if len(names) == 0 {
		top = []byte("{}")
	}
	fsys[TopFile] = &fstest.MapFile{Data: top}
	t, err := Load(fsys, LoadOptions{})
	if err != nil {
		return nil, err
	}
	if p := t.Problems(); len(p) > 0 {
		return nil, p[0]
	}
	return t, nil
}

// RefOpener is the peel's Secret callback: references answered from v.
func RefOpener(v *Values) func(string) (string, error) {
	return func(ref string) (string, error) {
		if v != nil {
			if p, ok := v.Values[ref]; ok {
				return p, nil
			}
		}
		if !strings.HasPrefix(ref, RefPrefix) {
			return "", fmt.Errorf("%w: a peel renders sanitized templates, which hold references (%s…)", ErrBadToken, RefPrefix)
		}
		return "", fmt.Errorf("secret %.12s… is not in this peel's secrets entry (not sealed to it yet)", ref)
	}
}

// FileHashes returns the SHA-256 of every file's source by name, and of
// top.zy under TopFile, and of each file problem's text: two trees differ
// in a file exactly when its entry differs.
func (t *Tree) FileHashes() map[string]string {
	out := make(map[string]string, len(t.files)+len(t.problems)+1)
	h := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	out[TopFile] = h(t.topSrc)
	for n, f := range t.files {
		out[n] = h(f.src)
	}
	for n, err := range t.problems {
		out[n] = h([]byte("problem: " + err.Error()))
	}
	return out
}
