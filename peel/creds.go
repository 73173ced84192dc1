package peel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/atomicfile"
	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/enroll"
)

// The peel's own identity (issue 11, item 3): its keys, made on first start
// in data_dir, and the user JWT the masters issued it. The seeds never leave
// the host; the JWT is public. Files, all 0600 in a 0700 data_dir:
//
//	peel.nk   the nkey seed: names the peel to NATS, signs enrollment proofs
//	peel.xk   the curve seed: opens the secrets sealed to this peel
//	peel.jwt  the current user JWT (replaced atomically on renewal)
const (
	fileNKey  = "peel.nk"
	fileCurve = "peel.xk"
	fileJWT   = "peel.jwt"
)

type identity struct {
	dir, id string
	kp      nkeys.KeyPair
	curve   nkeys.KeyPair
	pub     string

	mu  sync.Mutex
	tok string
	uc  *jwt.UserClaims // nil: no JWT
}

// loadIdentity reads the peel's keys from dir, creating them on first
// start, and its JWT when there is one for this id and key.
func loadIdentity(dir, id string) (*identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	kp, err := loadOrCreateSeed(filepath.Join(dir, fileNKey), nkeys.CreateUser, nkeys.FromSeed)
	if err != nil {
		return nil, err
	}
	curve, err := loadOrCreateSeed(filepath.Join(dir, fileCurve), nkeys.CreateCurveKeys, nkeys.FromCurveSeed)
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	if !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("%s: not a user seed", filepath.Join(dir, fileNKey))
	}
	i := &identity{dir: dir, id: id, kp: kp, curve: curve, pub: pub}
	b, err := os.ReadFile(filepath.Join(dir, fileJWT))
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		// A JWT of another id (peel.yaml's id changed) or key is useless:
		// the peel enrolls again. (An expired one is kept: valid says so.)
		if enroll.CheckIssued(tok, id, pub, time.Time{}) == nil {
			i.tok, i.uc = tok, decodeUser(tok)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	return i, nil
}

func decodeUser(tok string) *jwt.UserClaims {
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return nil
	}
	return uc
}

// loadOrCreateSeed reads a seed file, or creates it (0600, never
// overwriting) when it does not exist. A seed that every local user can read
// is refused: it is the peel's identity.
func loadOrCreateSeed(path string, create func() (nkeys.KeyPair, error), parse func([]byte) (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := create()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		seed, _ := kp.Seed()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		_, werr := f.Write(append(seed, '\n'))
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return nil, fmt.Errorf("create %s: %w", path, werr)
		}
		return kp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets other users read the peel's key: chmod 600", path, st.Mode().Perm())
	}
	kp, err := parse([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kp, nil
}

// JWT returns the current JWT ("" when none).
func (i *identity) JWT() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.tok
}

// valid reports whether the peel holds a JWT valid at now.
func (i *identity) valid(now time.Time) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.uc != nil && (i.uc.Expires == 0 || now.Unix() < i.uc.Expires)
}

// renewAt is when the current JWT should be renewed: at two thirds of its
// life (zero: it never expires, or there is none).
func (i *identity) renewAt() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.uc == nil || i.uc.Expires == 0 {
		return time.Time{}
	}
	life := i.uc.Expires - i.uc.IssuedAt
	return time.Unix(i.uc.IssuedAt+life*2/3, 0)
}

// setJWT checks a JWT from a master and stores it (atomically replacing
// peel.jwt).
func (i *identity) setJWT(tok string) error {
	if err := enroll.CheckIssued(tok, i.id, i.pub, time.Now()); err != nil {
		return err
	}
	path := filepath.Join(i.dir, fileJWT)
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("store JWT: %w", err)
	}
	i.mu.Lock()
	i.tok, i.uc = tok, decodeUser(tok)
	i.mu.Unlock()
	return nil
}

// natsAuth authenticates a connection as the enrolled peel: the current
// JWT (read at every connect, so a renewed one is used on the next
// reconnect) and the nkey's signature of the server's nonce.
func (i *identity) natsAuth() nats.Option {
	return nats.UserJWT(func() (string, error) {
		if tok := i.JWT(); tok != "" {
			return tok, nil
		}
		return "", errors.New("peel has no credentials yet")
	}, func(nonce []byte) ([]byte, error) { return i.kp.Sign(nonce) })
}

// authOptions are the connect options of the peel's own credentials: a
// static credentials file (nats.creds), or the enrolled identity.
func (p *Peel) authOptions() []nats.Option {
	switch {
	case p.ident != nil:
		// nats.go stops reconnecting after the same auth error twice; an
		// enrolled peel keeps trying, since credsLoop can get it new
		// credentials (or an operator can let a revoked peel in again).
		return []nats.Option{p.ident.natsAuth(), nats.IgnoreAuthErrorAbort()}
	case p.cfg.NATS.Creds != "":
		return []nats.Option{nats.UserCredentials(p.cfg.NATS.Creds)}
	}
	return nil
}

// prepareIdentity runs before the peel's connection: it loads or makes the
// keys and, without valid credentials, enrolls (waiting for acceptance as
// long as it takes, or until ctx ends).
func (p *Peel) prepareIdentity(ctx context.Context) error {
	if p.cfg.EnrollCreds == "" {
		return nil
	}
	ident, err := loadIdentity(p.cfg.DataDir, p.cfg.ID)
	if err != nil {
		return err
	}
	p.ident = ident
	if tok := ident.JWT(); tok != "" {
		if err := p.trust.setTrustJWT(tok); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(p.cfg.DataDir, fileJWT), err)
		}
	}
	if ident.valid(time.Now()) {
		return nil
	}
	return p.enroll(ctx)
}

// storeJWT keeps a JWT a master issued: in data_dir, and as the peel's
// trust (the masters' keys it verifies dispatches with are those its own
// JWT's issuer vouches for).
func (p *Peel) storeJWT(tok string) error {
	if err := p.ident.setJWT(tok); err != nil {
		return err
	}
	return p.trust.setTrustJWT(tok)
}

// credsLoop keeps the credentials valid while the peel runs: it renews at
// two thirds of their life over the peel's own connection, then reconnects
// so the connection carries the new JWT. A peel that cannot connect with
// its credentials (they expired while it was off or cut off, or were
// revoked) goes through enrollment again, which gives an accepted peel a
// fresh JWT at once and tells a revoked one so (and keeps asking, until an
// operator deletes the record and the peel is accepted anew).
func (p *Peel) credsLoop(ctx context.Context) {
	if p.ident == nil {
		return
	}
	fail := 0
	retry := backoff.New(time.Second, time.Minute)
	for {
		d := credsPoll
		if fail > 0 {
			d = retry.Delay(fail - 1)
		}
		t := time.NewTimer(d)
		woke := waitWake(ctx, t, nil)
		t.Stop()
		if !woke {
			return
		}
		var err error
		switch p.credsAction(time.Now()) {
		case credsOK:
			fail = 0
			continue
		case credsRenew:
			err = p.renew(ctx)
		case credsReenroll:
			p.log.Warn("the server refuses the peel's credentials; enrolling again", "err", p.nc.LastError())
			err = p.enroll(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			fail++
			p.log.Warn("credentials not renewed", "err", err, "attempt", fail)
			continue
		}
		fail = 0
		// The connection carries the JWT it was opened with: open it anew
		// (a disconnected one uses the new JWT at its next attempt).
		if p.nc.IsConnected() {
			if err := p.nc.ForceReconnect(); err != nil {
				p.log.Warn("reconnect with the renewed credentials", "err", err)
			}
		}
	}
}

// credsPoll is how often credsLoop looks at the credentials and the
// connection: a revoked or expired credential is noticed this soon.
const credsPoll = 2 * time.Second

type credsAct int

const (
	credsOK credsAct = iota
	credsRenew
	credsReenroll
)

func (p *Peel) credsAction(now time.Time) credsAct {
	connected := p.nc.IsConnected()
	switch {
	case !p.ident.valid(now):
		return credsReenroll
	case !connected && isAuthError(p.nc.LastError()):
		return credsReenroll
	case connected && !p.ident.renewAt().IsZero() && !now.Before(p.ident.renewAt()):
		return credsRenew
	}
	return credsOK
}

func (p *Peel) renew(ctx context.Context) error {
	tok, err := enroll.Renew(ctxTimeout(ctx, 10*time.Second), p.nc, p.ident.kp, p.cfg.ID)
	if err != nil {
		return err
	}
	if err := p.storeJWT(tok); err != nil {
		return err
	}
	p.log.Info("credentials renewed", "expires", time.Unix(p.ident.uc.Expires, 0).UTC())
	return nil
}

// isAuthError reports whether a connection error means the server refused
// the credentials.
func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

// Connected reports whether the peel's own NATS connection is up.
func (p *Peel) Connected() bool { return p.nc != nil && p.nc.IsConnected() }

// identKey is the enrolled peel's public key ("" without enrollment).
func (p *Peel) identKey() string {
	if p.ident == nil {
		return ""
	}
	return p.ident.pub
}
