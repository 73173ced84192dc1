// Package pki is Zester's trust root: the NATS operator, the Zester account
// and the system account, the credentials of masters, operators and the
// enrollment bootstrap, the masters' curve key, and the per-peel user JWTs.
//
// Trust in one picture (DESIGN.md): the operator key signs the account; the
// account's signing key (held by the masters) signs each accepted peel's user
// JWT and each operator user's; the masters' own nkeys sign every dispatch,
// and peels verify against the public keys the PKI trusts; the masters' curve
// key opens secret tokens from the settings tree, and each peel's curve key
// opens only its own sealed values. Nothing secret is ever needed by the NATS
// servers themselves: they get public JWTs only (ConfigureServer,
// ServerConfig).
//
//	operator (operator.nk, OFFLINE)
//	  └─ operator signing key (operator-signing.nk, masters: re-signs the account JWT to revoke a user)
//	       ├─ Zester account (account.nk, OFFLINE; account.jwt, servers)
//	       │    └─ account signing key (account-signing.nk, masters)
//	       │         ├─ master.creds   masters: everything in the account
//	       │         ├─ admin.creds    role admin: everything in the account
//	       │         ├─ enroll.creds   bootstrap: publish zester.enroll, replies on _INBOX._enroll.>
//	       │         ├─ users/NAME.jwt operator users (zester pki user add): role operator|readonly
//	       │         └─ peel JWTs      one per accepted peel: PeelPermissions(id)
//	       └─ system account (sys-account.nk, OFFLINE; sys-account.jwt, servers)
//	            └─ sys.creds           operators: nats server report, $SYS
//	master.xk: the masters' curve (X25519) key: opens secret tokens, seals per-peel values
//
// The operator JWT sets StrictSigningKeyUsage, so its identity seed signs
// nothing but the operator JWT itself and can stay offline for the life of
// the deployment; replacing a leaked operator signing key is the one thing it
// is needed for. The account identity seed is likewise unused once the
// account has a signing key.
//
// Permissions follow from names. Every grant is built from package names
// (PeelPermissions, the role table in roles.go), so the subjects the code uses
// and the subjects the credentials allow cannot drift apart. A peel's grant
// never opens another peel's key: KV reads are direct gets with the key in the
// subject, never the bare direct get, the stream message get or the legacy
// consumer create, which carry the key in the body. A peel id may hold dots;
// a KV key puts it last, where a dotted id is simply more tokens, so
// `$KV.job-returns.*.web1.example.com` matches exactly that peel's returns
// (`*` is one token: the job id).
//
// Limits of operator users (target and function globs, Salt's
// publisher_acl) travel in the user JWT's tags, escaped to survive the
// lower-casing that jwt.TagList applies (EncodeTag). The master reads them
// from the caller's JWT (UserInfo); the NATS server does not enforce them.
//
// This package reports through return values and never logs.
package pki
