package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/shard"
)

func (a *app) pkiPeelCmd() *cobra.Command {
	var dir, out string
	var expiry time.Duration
	add := &cobra.Command{
		Use:   "add PEEL-ID [--dir DIR] [--out FILE] [--expiry D]",
		Short: "Issue a peel's credentials ahead of time, for peel.yaml nats.creds",
		Long: `Issue the credentials of one peel without enrollment, for hosts provisioned
ahead of time (an image, a configuration management run): a new nkey and a user
JWT with the peel's own permissions (zester pki permissions PEEL-ID), signed by
the account signing key of the PKI in --dir. Write the file (0600, never
overwritten) to the host and name it in peel.yaml nats.creds. The public JWT is
kept in DIR/peels/PEEL-ID.jwt; a second add of the same id is refused.

The peel also learns from these credentials which masters to trust: it runs
only dispatches signed by a master whose credentials the same account signing
key issued.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, out, err := openIssue(dir, out, args[0])
			if err != nil {
				return err
			}
			creds, err := p.AddPeel(args[0], expiry)
			if err != nil {
				return withCode(ExitError, err)
			}
			if err := writeSecret(out, creds); err != nil {
				return withCode(ExitError, err)
			}
			n, _ := p.Partitions()
			fmt.Fprintf(a.out, "wrote %s: peel %s, partition %d of %d\n", out, args[0], shard.Partition(args[0], n), n)
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&dir, "dir", pki.DefaultDir, "PKI directory")
	f.StringVar(&out, "out", "", "credentials file to write (default PEEL-ID.creds)")
	f.DurationVar(&expiry, "expiry", 0, "validity of the credentials (default: no expiry)")
	return group("peel", "Peel credentials issued ahead of time (pre-provisioned hosts)", add)
}

// writeSecret creates path (0600), refusing to overwrite.
// openIssue loads the PKI in dir and settles the credentials file an issue
// writes: out, or ID.creds. It refuses to overwrite a file.
func openIssue(dir, out, id string) (*pki.PKI, string, error) {
	p, err := pki.Load(dir)
	if err != nil {
		return nil, "", withCode(ExitError, err)
	}
	if out == "" {
		out = id + ".creds"
	}
	if _, err := os.Lstat(out); err == nil {
		return nil, "", withCode(ExitError, fmt.Errorf("--out %s exists: refusing to overwrite", out))
	}
	return p, out, nil
}

func writeSecret(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := fh.Write(data)
	if cerr := fh.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
