package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/pki/pkitest"
	"github.com/zester-io/zester/shard"
)

// `zester pki peel add` issues working credentials with the peel's own
// permissions, for the partition count of the PKI, and never twice.
func TestPKIPeelAdd_CredsWorkForThatPeelOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, errOut, code := runCLI(t, "pki", "init", "--dir", dir, "--partitions", "16"); code != 0 {
		t.Fatalf("pki init: %s", errOut)
	}
	const id = "web1.example.com"
	out := filepath.Join(t.TempDir(), "web1.creds")
	stdout, errOut, code := runCLI(t, "pki", "peel", "add", id, "--dir", dir, "--out", out)
	part := shard.Partition(id, 16)
	if code != 0 || !strings.Contains(stdout, "partition "+strconv.Itoa(part)+" of 16") {
		t.Fatalf("pki peel add: exit %d: %s%s", code, stdout, errOut)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("creds file: %v %v", err, st.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, pki.DirPeels, id+".jwt")); err != nil {
		t.Fatalf("inventory: %v", err)
	}
	// Refused: the same id again, an existing output file, a bad id.
	if _, errOut, code := runCLI(t, "pki", "peel", "add", id, "--dir", dir, "--out", out+".2"); code == 0 || !strings.Contains(errOut, "issued already") {
		t.Fatalf("second add: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "pki", "peel", "add", "db1", "--dir", dir, "--out", out); code == 0 || !strings.Contains(errOut, "refusing to overwrite") {
		t.Fatalf("existing --out: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "pki", "peel", "add", "bad id", "--dir", dir); code == 0 || !strings.Contains(errOut, "invalid id") {
		t.Fatalf("bad id: exit %d: %s", code, errOut)
	}

	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := pkitest.StartServer(t, p)
	c := pkitest.Connect(t, srv.ClientURL(), pki.CredsInboxPrefix(out), nats.UserCredentials(out))
	// Its partition's job subject under 16 partitions, not another.
	if _, err := c.SubscribeSync(names.JobSubject(part)); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	c.SubscribeDenied(t, names.JobSubject((part+1)%16))
	c.PublishDenied(t, names.KVSubjectPrefix(names.BucketFacts)+"db1")
	if len(c.Violations()) != 2 {
		t.Fatalf("violations: %q", c.Violations())
	}
}
