package enroll

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/names"
)

// The peel's side of the exchange, shared by zester-peel and the load
// generator's simulated peels. nc is a connection with the bootstrap
// credential and names.EnrollInboxPrefix as its inbox prefix.

// Exchange runs hello and prove for the peel whose nkey is kp: c carries
// its id, curve key, claimed facts and token (its nkey and nonce are filled
// in). It returns the master's result (pending or accepted), or the
// master's *Refusal as the error.
func Exchange(ctx context.Context, nc *nats.Conn, kp nkeys.KeyPair, c Claim) (*Reply, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	c.NKey = pub
	ch, err := call(ctx, nc, &Request{Op: OpHello, ID: c.ID, NKey: pub})
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if ch.Nonce == "" {
		return nil, fmt.Errorf("hello: the master sent no challenge")
	}
	c.Nonce = ch.Nonce
	req, err := SignClaim(kp, &c)
	if err != nil {
		return nil, err
	}
	res, err := call(ctx, nc, req)
	if err != nil {
		return nil, fmt.Errorf("prove: %w", err)
	}
	switch res.State {
	case StateAccepted:
		if err := CheckIssued(res.JWT, c.ID, pub, time.Now()); err != nil {
			return nil, err
		}
	case StatePending:
	default:
		return nil, fmt.Errorf("prove: the master answered state %q", res.State)
	}
	return res, nil
}

func call(ctx context.Context, nc *nats.Conn, req *Request) (*Reply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	m, err := nc.RequestWithContext(ctx, names.SubjectEnroll, b)
	if err != nil {
		return nil, err
	}
	return decodeReply(m.Data)
}

func decodeReply(b []byte) (*Reply, error) {
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("master's answer: %w", err)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	return &r, nil
}

// Renew asks for a fresh JWT over the peel's own connection nc.
func Renew(ctx context.Context, nc *nats.Conn, kp nkeys.KeyPair, id string) (string, error) {
	b, err := SignRenew(kp, id, time.Now())
	if err != nil {
		return "", err
	}
	m, err := nc.RequestWithContext(ctx, names.EnrollRenewSubject(id), b)
	if err != nil {
		return "", fmt.Errorf("renew: %w", err)
	}
	r, err := decodeReply(m.Data)
	if err != nil {
		return "", fmt.Errorf("renew: %w", err)
	}
	pub, _ := kp.PublicKey()
	if err := CheckIssued(r.JWT, id, pub, time.Now()); err != nil {
		return "", fmt.Errorf("renew: %w", err)
	}
	return r.JWT, nil
}

// CheckIssued checks that a JWT the master sent is a user JWT for this
// peel: its key, its id, valid now. (That the account signed it is the NATS
// server's check at connect.) A master's mistake or a forged reply on the
// shared enrollment inbox then fails here instead of at every reconnect.
func CheckIssued(tok, id, pub string, now time.Time) error {
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return fmt.Errorf("issued JWT: %w", err)
	}
	if uc.Subject != pub {
		return fmt.Errorf("issued JWT is for key %s, not this peel's %s", uc.Subject, pub)
	}
	if uc.Name != id {
		return fmt.Errorf("issued JWT names peel %q, not %q", uc.Name, id)
	}
	if uc.Expires > 0 && now.Unix() >= uc.Expires {
		return fmt.Errorf("issued JWT expired at %s", time.Unix(uc.Expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}
