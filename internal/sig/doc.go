// Package sig signs and verifies the messages Zester must not take on the
// word of the NATS server alone: the dispatches and control messages that
// masters send to peels, and the requests operators send to the master API.
//
// Why signatures on top of NATS permissions: a NATS server checks who may
// publish on a subject, but every receiver of that subject then sees only
// the message, not its sender. Several principals can legitimately get a
// message onto a subject they may not publish on (a JetStream consumer's
// deliver subject is chosen by whoever creates it; a leaf node run by
// someone else injects into the subjects it shares), and a request's reply
// subject is never permission-checked. So a peel runs a dispatch only when a
// master's key signed it, and a master acts on an API request only for the
// identity whose key signed it.
//
// What is signed is the exact bytes sent, never a re-encoding: Content
// concatenates a version tag, the purpose, the subject, the signing time,
// a nonce and the body, separated by '\n' (none of the first five can hold
// one: subjects cannot contain white space, the others are digits and
// base64), with the body last. The receiver verifies those bytes and then
// parses the same body bytes, so there is no canonicalisation to get wrong.
// The subject is covered, so a dispatch for one partition cannot be replayed
// on another, nor a dispatch's signature used for a control message.
//
// A signed message carries the signer's user JWT (HeaderSigner) and its
// ed25519 signature (HeaderSig). The receiver decides whom to trust with a
// Trust: the account, the keys that may issue signers' JWTs (the account's
// signing keys), and the account's revocations. A peel builds its Trust from
// its own credentials: the key that issued its own JWT is the account
// signing key the masters' JWT was issued by too, so a peel needs no
// configured list of master keys, and a master key is one the PKI trusts by
// construction. A master builds its Trust from the account JWT, whose
// revocations it follows.
//
// Roles travel in the JWT's tags (zester-role:<role>, written by package
// pki). A JWT is verified once and cached by its text; its issuer, expiry
// and revocation are checked on every message.
package sig
