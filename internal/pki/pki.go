package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/atomicfile"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/shard"
)

// DefaultDir is where `zester pki init` writes the PKI and where master.yaml's
// pki_dir points by default.
const DefaultDir = "/etc/zester/pki"

// Files of a PKI directory.
const (
	FileOperatorJWT         = "operator.jwt"
	FileOperatorSeed        = "operator.nk"
	FileOperatorSigningSeed = "operator-signing.nk"
	FileAccountJWT          = "account.jwt"
	FileAccountSeed         = "account.nk"
	FileAccountSigningSeed  = "account-signing.nk"
	FileSystemJWT           = "sys-account.jwt"
	FileSystemSeed          = "sys-account.nk"
	FileMasterCreds         = "master.creds"
	FileMasterCurve         = "master.xk"
	FileAdminCreds          = "admin.creds"
	FileEnrollCreds         = "enroll.creds"
	FileSysCreds            = "sys.creds"
	// DirUsers holds the JWT of every user `zester pki user add` issued
	// (public; the inventory for revocation).
	DirUsers = "users"
)

// AccountName is the name in the Zester account JWT.
const AccountName = "zester"

// Place says who needs a file of the PKI.
type Place string

// Places.
const (
	// Offline: move to offline storage (a vault, an HSM) after init; nothing
	// running needs it.
	Offline Place = "offline"
	// Masters: every master host needs it (master.yaml pki_dir).
	Masters Place = "masters"
	// Servers: public; NATS servers are configured from it.
	Servers Place = "servers"
	// Operators: give to the person or system named.
	Operators Place = "operators"
	// Peels: copy to every new peel (peel.yaml enroll_creds).
	Peels Place = "peels"
)

// File describes one file Init created.
type File struct {
	Name  string // base name in the PKI directory
	Path  string
	Place Place
	What  string
}

// Summary says what Init created and where each file belongs.
type Summary struct {
	Dir              string
	Operator         string // operator public key
	Account          string // Zester account public key
	SystemAccount    string // system account public key
	AccountSigning   string // account signing public key
	OperatorSigning  string // operator signing public key
	MasterUser       string // public key of the master.creds user
	MasterCurve      string // masters' curve public key (seal secrets to it)
	Partitions       int    // in the account's partition mapping
	JetStreamDisk    int64
	JetStreamMemory  int64
	Files            []File
	OfflineReminders []string
}

// In returns the files that belong to place.
func (s *Summary) In(place Place) []File {
	var out []File
	for _, f := range s.Files {
		if f.Place == place {
			out = append(out, f)
		}
	}
	return out
}

// InitOptions tune Init. The zero value is the default.
type InitOptions struct {
	// Partitions is the fleet's partition count, baked into the account
	// JWT's subject mapping (zester.in.* → zester.inp.<partition>); must match
	// master.yaml. Default 64.
	Partitions int
	// JetStreamDisk and JetStreamMemory are the account's JetStream storage
	// limits in bytes; -1 (the default, for 0) is unlimited. In operator
	// mode JetStream is on for an account only when its JWT grants storage.
	JetStreamDisk, JetStreamMemory int64
}

// ErrExists is returned (wrapped) by Init when a PKI file is already there.
var ErrExists = errors.New("refusing to overwrite an existing PKI")

// layout lists every file Init writes, in the order it prints them.
var layout = []struct {
	name  string
	place Place
	what  string
}{
	{FileOperatorSeed, Offline, "operator identity seed: signs only the operator JWT (rotating the operator signing key)"},
	{FileAccountSeed, Offline, "Zester account identity seed: not needed once the account has its signing key"},
	{FileSystemSeed, Offline, "system account identity seed: adds signing keys to the system account (to issue more system users)"},
	{FileOperatorSigningSeed, Masters, "operator signing seed: re-signs the account JWT (revoking users)"},
	{FileAccountSigningSeed, Masters, "account signing seed: issues peel and operator user JWTs"},
	{FileMasterCreds, Masters, "masters' NATS credentials: everything in the Zester account"},
	{FileMasterCurve, Masters, "masters' curve key (X25519): opens secret tokens, seals per-peel values"},
	{FileOperatorJWT, Servers, "operator JWT (public): trusted by every NATS server"},
	{FileAccountJWT, Servers, "Zester account JWT (public): JetStream limits, partition mapping, revocations"},
	{FileSystemJWT, Servers, "system account JWT (public)"},
	{FileAdminCreds, Operators, "first admin user: everything in the Zester account (zester --creds)"},
	{FileSysCreds, Operators, "system account user: nats server report, $SYS requests"},
	{FileEnrollCreds, Peels, "enrollment bootstrap credential: can only ask to enroll"},
	// The admin's record reserves its name: a second user "admin" would
	// share its inbox prefix.
	{filepath.Join(DirUsers, "admin.jwt"), Operators, "public JWT of the admin user (users/ lists every issued user)"},
}

// Init creates a new PKI in dir: the operator, the Zester account with
// JetStream and a signing key, the system account, the masters', admin's,
// system user's and enrollment credentials, and the masters' curve key.
// The directory is made 0700 and every file 0600. Init refuses to overwrite:
// if any file of the layout exists it returns an error wrapping ErrExists
// that names the file, and writes nothing.
func Init(dir string, o InitOptions) (*Summary, error) {
	if dir == "" {
		return nil, errors.New("pki init: directory: empty")
	}
	if o.Partitions == 0 {
		o.Partitions = shard.DefaultPartitions
	}
	if o.Partitions < 1 || o.Partitions > 65536 {
		return nil, fmt.Errorf("pki init: partitions %d: want 1 to 65536", o.Partitions)
	}
	if o.JetStreamDisk == 0 {
		o.JetStreamDisk = jwt.NoLimit
	}
	if o.JetStreamMemory == 0 {
		o.JetStreamMemory = jwt.NoLimit
	}
	for _, f := range layout {
		p := filepath.Join(dir, f.name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("pki init: %s exists: %w (move the directory away to start over)", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pki init: %w", err)
		}
	}
	files, sum, err := generate(o)
	if err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	// An existing directory (made by a package, say) is tightened too: the
	// seeds in it are the keys to the fleet.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, DirUsers), 0o700); err != nil {
		return nil, fmt.Errorf("pki init: %w", err)
	}
	var written []string
	for _, f := range layout {
		p := filepath.Join(dir, f.name)
		if err := writeNew(p, files[f.name]); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, fmt.Errorf("pki init: %w", err)
		}
		written = append(written, p)
		sum.Files = append(sum.Files, File{Name: f.name, Path: p, Place: f.place, What: f.what})
	}
	sum.Dir = dir
	sum.OfflineReminders = []string{
		"move " + strings.Join(fileNames(sum.In(Offline)), ", ") + " to offline storage; no master, server or peel needs them",
		"masters need " + strings.Join(fileNames(sum.In(Masters)), ", ") + " (master.yaml pki_dir): keep them 0600, owned by the master's user",
	}
	return sum, nil
}

func fileNames(fs []File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// writeNew creates p (0600), failing if it exists, and syncs it.
func writeNew(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(p)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(p)
		return err
	}
	return f.Close()
}

// writeReplace atomically replaces p with data (0600).
func writeReplace(p string, data []byte) error { return atomicfile.WriteFile(p, data, 0o600) }

type keys struct {
	op, opSign, acc, accSign, sys nkeys.KeyPair
}

func generate(o InitOptions) (map[string][]byte, *Summary, error) {
	var k keys
	var err error
	mk := func(f func() (nkeys.KeyPair, error)) nkeys.KeyPair {
		if err != nil {
			return nil
		}
		var kp nkeys.KeyPair
		kp, err = f()
		return kp
	}
	k.op = mk(nkeys.CreateOperator)
	k.opSign = mk(nkeys.CreateOperator)
	k.acc = mk(nkeys.CreateAccount)
	k.accSign = mk(nkeys.CreateAccount)
	k.sys = mk(nkeys.CreateAccount)
	curve := mk(nkeys.CreateCurveKeys)
	if err != nil {
		return nil, nil, fmt.Errorf("create keys: %w", err)
	}
	opPub, _ := k.op.PublicKey()
	opSignPub, _ := k.opSign.PublicKey()
	accPub, _ := k.acc.PublicKey()
	accSignPub, _ := k.accSign.PublicKey()
	sysPub, _ := k.sys.PublicKey()
	curvePub, _ := curve.PublicKey()

	files := map[string][]byte{}
	seed := func(name string, kp nkeys.KeyPair) {
		s, e := kp.Seed()
		if e != nil && err == nil {
			err = e
		}
		files[name] = append(s, '\n')
	}
	seed(FileOperatorSeed, k.op)
	seed(FileOperatorSigningSeed, k.opSign)
	seed(FileAccountSeed, k.acc)
	seed(FileAccountSigningSeed, k.accSign)
	seed(FileSystemSeed, k.sys)
	seed(FileMasterCurve, curve)
	if err != nil {
		return nil, nil, err
	}

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "zester"
	oc.SigningKeys.Add(opSignPub)
	oc.SystemAccount = sysPub
	oc.StrictSigningKeyUsage = true
	opJWT, err := encode(oc, k.op)
	if err != nil {
		return nil, nil, fmt.Errorf("operator JWT: %w", err)
	}

	ac := jwt.NewAccountClaims(accPub)
	ac.Name = AccountName
	ac.SigningKeys.Add(accSignPub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: o.JetStreamMemory, DiskStorage: o.JetStreamDisk,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit,
	}
	// Peel→master traffic is split by partition in the server (shard);
	// in operator mode an account's mappings come from its JWT.
	src, dst := names.PartitionMapping(o.Partitions)
	ac.Mappings[jwt.Subject(src)] = []jwt.WeightedMapping{{Subject: jwt.Subject(dst), Weight: 100}}
	accJWT, err := encode(ac, k.opSign)
	if err != nil {
		return nil, nil, fmt.Errorf("account JWT: %w", err)
	}

	// nats-server 2.15 accepts only users issued by one of the account's
	// signing keys, not by its identity key: the system account gets one,
	// used once to issue sys.creds and not kept (the identity seed, offline,
	// can add another).
	sysSign, err := nkeys.CreateAccount()
	if err != nil {
		return nil, nil, fmt.Errorf("create keys: %w", err)
	}
	sysSignPub, _ := sysSign.PublicKey()
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sc.SigningKeys.Add(sysSignPub)
	sysJWT, err := encode(sc, k.opSign)
	if err != nil {
		return nil, nil, fmt.Errorf("system account JWT: %w", err)
	}
	files[FileOperatorJWT] = []byte(opJWT + "\n")
	files[FileAccountJWT] = []byte(accJWT + "\n")
	files[FileSystemJWT] = []byte(sysJWT + "\n")

	iss := &issuer{account: accPub, signer: k.accSign}
	sum := &Summary{
		Operator: opPub, Account: accPub, SystemAccount: sysPub, AccountSigning: accSignPub,
		OperatorSigning: opSignPub, MasterCurve: curvePub, Partitions: o.Partitions,
		JetStreamDisk: o.JetStreamDisk, JetStreamMemory: o.JetStreamMemory,
	}
	var masterUC *jwt.UserClaims
	if files[FileMasterCreds], masterUC, err = iss.newCreds(UserSpec{Name: "master", Role: roleMaster}); err != nil {
		return nil, nil, err
	}
	sum.MasterUser = masterUC.Subject
	if files[FileAdminCreds], _, err = iss.newCreds(UserSpec{Name: "admin", Role: RoleAdmin}); err != nil {
		return nil, nil, err
	}
	adminJWT, _ := jwt.ParseDecoratedJWT(files[FileAdminCreds])
	files[filepath.Join(DirUsers, "admin.jwt")] = []byte(adminJWT + "\n")
	if files[FileEnrollCreds], _, err = iss.newCreds(UserSpec{Name: "enroll", Role: roleEnroll}); err != nil {
		return nil, nil, err
	}
	// The system user belongs to the system account, issued by its
	// signing key.
	sysIss := &issuer{account: sysPub, signer: sysSign}
	if files[FileSysCreds], _, err = sysIss.newCreds(UserSpec{Name: "sys", Role: roleSystem}); err != nil {
		return nil, nil, err
	}
	return files, sum, nil
}

// claims is what encode needs of jwt's claim types.
type claims interface {
	Validate(*jwt.ValidationResults)
	Encode(nkeys.KeyPair) (string, error)
}

// encode validates c and signs it.
func encode(c claims, kp nkeys.KeyPair) (string, error) {
	vr := jwt.CreateValidationResults()
	c.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return c.Encode(kp)
}

// LoadOrInit loads the PKI in dir, creating it first when dir holds none of
// its files (an embedded master's first start). The summary is nil when the
// PKI existed. A directory with some of the files but not a loadable PKI is
// an error naming the file, never overwritten.
func LoadOrInit(dir string, o InitOptions) (*PKI, *Summary, error) {
	var sum *Summary
	if _, err := os.Lstat(filepath.Join(dir, FileOperatorJWT)); errors.Is(err, fs.ErrNotExist) {
		if sum, err = Init(dir, o); err != nil {
			return nil, nil, err
		}
	}
	p, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	return p, sum, nil
}

// PKI is a loaded PKI directory: what a master needs, and nothing that
// belongs offline (Load works after the offline seeds are moved away).
type PKI struct {
	Dir string

	Operator    *jwt.OperatorClaims
	OperatorJWT string
	System      *jwt.AccountClaims
	SystemJWT   string
	// MasterCreds is the path of the masters' credentials file.
	MasterCreds string
	// MasterUser is the public key of the masters' user: the key that will
	// sign dispatches (peels trust it through the account signing key that
	// issued it).
	MasterUser string

	iss            *issuer
	operatorSigner nkeys.KeyPair // nil when operator-signing.nk is absent
	masterCurve    nkeys.KeyPair

	mu         sync.Mutex // guards account, accountJWT (Revoke)
	account    *jwt.AccountClaims
	accountJWT string
}

// Load reads a PKI directory written by Init: the public JWTs, the account
// signing seed, the masters' credentials and curve key, and the operator
// signing seed when present (Revoke needs it). It checks the chain (account
// and system account signed by the operator, the signing key listed in the
// account, the system account named by the operator) and refuses seed files
// that others can read. Errors name the file.
func Load(dir string) (*PKI, error) {
	p := &PKI{Dir: dir, MasterCreds: filepath.Join(dir, FileMasterCreds)}
	var err error
	var opJWT string
	if opJWT, err = readText(dir, FileOperatorJWT); err != nil {
		return nil, err
	}
	if p.Operator, err = jwt.DecodeOperatorClaims(opJWT); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, FileOperatorJWT), err)
	}
	p.OperatorJWT = opJWT
	load := func(file string) (*jwt.AccountClaims, string, error) {
		s, err := readText(dir, file)
		if err != nil {
			return nil, "", err
		}
		ac, err := jwt.DecodeAccountClaims(s)
		if err != nil {
			return nil, "", fmt.Errorf("pki: %s: %w", filepath.Join(dir, file), err)
		}
		if !p.Operator.DidSign(ac) {
			return nil, "", fmt.Errorf("pki: %s: not signed by the operator of %s", filepath.Join(dir, file), FileOperatorJWT)
		}
		return ac, s, nil
	}
	if p.account, p.accountJWT, err = load(FileAccountJWT); err != nil {
		return nil, err
	}
	if p.System, p.SystemJWT, err = load(FileSystemJWT); err != nil {
		return nil, err
	}
	if p.System.Subject != p.Operator.SystemAccount {
		return nil, fmt.Errorf("pki: %s: account %s is not the operator's system account %s", filepath.Join(dir, FileSystemJWT), p.System.Subject, p.Operator.SystemAccount)
	}
	signer, err := readSeed(dir, FileAccountSigningSeed, nkeys.PrefixByteAccount)
	if err != nil {
		return nil, err
	}
	if pub, _ := signer.PublicKey(); !p.account.SigningKeys.Contains(pub) {
		return nil, fmt.Errorf("pki: %s: key %s is not a signing key of the account in %s", filepath.Join(dir, FileAccountSigningSeed), pub, FileAccountJWT)
	}
	p.iss = &issuer{account: p.account.Subject, signer: newFastSigner(signer)}
	if p.masterCurve, err = readSeed(dir, FileMasterCurve, nkeys.PrefixByteCurve); err != nil {
		return nil, err
	}
	if p.operatorSigner, err = readSeed(dir, FileOperatorSigningSeed, nkeys.PrefixByteOperator); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		p.operatorSigner = nil
	} else if pub, _ := p.operatorSigner.PublicKey(); !p.Operator.SigningKeys.Contains(pub) {
		return nil, fmt.Errorf("pki: %s: key %s is not a signing key of the operator", filepath.Join(dir, FileOperatorSigningSeed), pub)
	}
	if err := checkPrivate(filepath.Join(dir, FileMasterCreds)); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p.MasterCreds)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	uc, err := DecodeCreds(b)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", p.MasterCreds, err)
	}
	if uc.IssuerAccount != p.account.Subject {
		return nil, fmt.Errorf("pki: %s: user of account %s, not of the Zester account %s", p.MasterCreds, uc.IssuerAccount, p.account.Subject)
	}
	p.MasterUser = uc.Subject
	return p, nil
}

// Account returns the current Zester account claims and JWT.
func (p *PKI) Account() (*jwt.AccountClaims, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.account, p.accountJWT
}

// AccountKey is the Zester account's public key.
func (p *PKI) AccountKey() string { return p.iss.account }

// MasterCurve is the masters' curve key pair (nkeys Seal/Open).
func (p *PKI) MasterCurve() nkeys.KeyPair { return p.masterCurve }

func readText(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return "", fmt.Errorf("pki: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkPrivate refuses a secret file that every local user can read or
// write: group access is allowed (0640 root:zester is the guidance).
func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return fmt.Errorf("pki: %s: mode %04o lets every local user at a secret: chmod 600 (or 640 for a group)", path, st.Mode().Perm())
	}
	return nil
}

func readSeed(dir, file string, prefix nkeys.PrefixByte) (nkeys.KeyPair, error) {
	path := filepath.Join(dir, file)
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	seed := []byte(strings.TrimSpace(string(b)))
	var kp nkeys.KeyPair
	if prefix == nkeys.PrefixByteCurve {
		kp, err = nkeys.FromCurveSeed(seed)
	} else {
		kp, err = nkeys.FromSeed(seed)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	if pub, _ := kp.PublicKey(); nkeys.Prefix(pub) != prefix {
		return nil, fmt.Errorf("pki: %s: a %s key, want a %s key", path, nkeys.Prefix(pub), prefix)
	}
	return kp, nil
}
