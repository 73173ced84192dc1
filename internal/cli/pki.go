package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/shard"
)

func (a *app) pkiCmd() *cobra.Command {
	return group("pki", "Zester's trust root: operator, account, credentials (NATS operator mode)",
		a.pkiInitCmd(), a.pkiUserCmd(), a.pkiPeelCmd(), a.pkiPermissionsCmd(), a.pkiServerConfigCmd())
}

func (a *app) pkiInitCmd() *cobra.Command {
	var dir string
	var o pki.InitOptions
	c := &cobra.Command{
		Use:   "init [--dir DIR]",
		Short: "Create the operator, the Zester account and the first credentials",
		Long: `Create a new PKI: the NATS operator, the Zester account (JetStream on, with a
signing key), the system account, the masters' credentials and curve key, the
first admin's credentials, and the enrollment bootstrap credential. The
directory is made 0700 and every file 0600; nothing is overwritten.

It prints where each file belongs. The operator and account identity seeds
belong offline: nothing running needs them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := pki.Init(dir, o)
			if err != nil {
				return withCode(ExitError, err)
			}
			fmt.Fprintf(a.out, "PKI created in %s\n", sum.Dir)
			fmt.Fprintf(a.out, "  operator       %s\n  account        %s (signing key %s)\n  system account %s\n",
				sum.Operator, sum.Account, sum.AccountSigning, sum.SystemAccount)
			fmt.Fprintf(a.out, "  partitions     %d (must match master.yaml)\n", sum.Partitions)
			for _, place := range []pki.Place{pki.Offline, pki.Masters, pki.Servers, pki.Operators, pki.Peels} {
				fmt.Fprintf(a.out, "\n%s:\n", placeTitle[place])
				table(a.out, "", func(tw io.Writer) {
					for _, f := range sum.In(place) {
						fmt.Fprintf(tw, "  %s\t%s\n", f.Name, f.What)
					}
				})
			}
			fmt.Fprintln(a.out)
			for _, r := range sum.OfflineReminders {
				fmt.Fprintln(a.out, "Next: "+r)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", pki.DefaultDir, "directory to create the PKI in (master.yaml pki_dir)")
	f.IntVar(&o.Partitions, "partitions", shard.DefaultPartitions, "partitions of the peel mapping in the account JWT (must match master.yaml)")
	f.Int64Var(&o.JetStreamDisk, "js-disk", -1, "JetStream file storage limit of the account in bytes (-1 unlimited)")
	f.Int64Var(&o.JetStreamMemory, "js-memory", -1, "JetStream memory storage limit of the account in bytes (-1 unlimited)")
	return c
}

var placeTitle = map[pki.Place]string{
	pki.Offline:   "OFFLINE: move these seeds to offline storage now (no master, server or peel needs them)",
	pki.Masters:   "Masters: every master host needs these (master.yaml pki_dir)",
	pki.Servers:   "NATS servers: public JWTs (zester pki server-config)",
	pki.Operators: "Operators",
	pki.Peels:     "Peels: copy to every new peel (peel.yaml enroll_creds)",
}

func (a *app) pkiUserCmd() *cobra.Command {
	var dir, role, out string
	var targets, functions []string
	var expiry time.Duration
	add := &cobra.Command{
		Use:   "add NAME --role admin|operator|readonly [--targets GLOB] [--functions GLOBS] [--out FILE]",
		Short: "Issue credentials for an operator user",
		Long: `Issue a user of the Zester account, signed by the account signing key of the
PKI in --dir, and write its credentials file (0600; use it with --creds or
ZESTER_CREDS). Its public JWT is kept in DIR/users/NAME.jwt.

Roles:
` + roleHelp() + `
--targets (repeatable, one target expression each, e.g. 'web-*' or
'G@os:id:debian') and --functions (globs, comma separated, e.g. 'test.*,cmd.run')
limit what the user may run, like Salt's publisher_acl. They are stored in the
user JWT's tags (zester-target:, zester-function:, escaped) for the master to
enforce; the NATS server does not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := pki.ParseRole(role)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("--role: %w", err))
			}
			p, out, err := openIssue(dir, out, args[0])
			if err != nil {
				return err
			}
			creds, u, err := p.IssueUser(pki.UserSpec{Name: args[0], Role: r, Targets: targets, Functions: functions, Expiry: expiry})
			if err != nil {
				return withCode(ExitError, err)
			}
			if err := writeSecret(out, creds); err != nil {
				return withCode(ExitError, err)
			}
			fmt.Fprintf(a.out, "wrote %s: user %s, role %s, key %s\n", out, u.Name, u.Role, u.Key)
			if len(u.Targets) > 0 {
				fmt.Fprintf(a.out, "  targets:   %s\n", strings.Join(u.Targets, " | "))
			}
			if len(u.Functions) > 0 {
				fmt.Fprintf(a.out, "  functions: %s\n", strings.Join(u.Functions, ", "))
			}
			if !u.Expires.IsZero() {
				fmt.Fprintf(a.out, "  expires:   %s\n", u.Expires.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&dir, "dir", pki.DefaultDir, "PKI directory")
	f.StringVar(&role, "role", "", "admin, operator or readonly")
	f.StringArrayVar(&targets, "targets", nil, "target expression the user may run on (repeatable)")
	f.StringSliceVar(&functions, "functions", nil, "function globs the user may run, comma separated")
	f.StringVar(&out, "out", "", "credentials file to write (default NAME.creds)")
	f.DurationVar(&expiry, "expiry", 0, "validity of the credentials (default: no expiry)")
	add.MarkFlagRequired("role")
	return group("user", "Operator users", add)
}

func roleHelp() string {
	var b strings.Builder
	for _, r := range pki.Roles() {
		fmt.Fprintf(&b, "  %-9s %s\n", r, r.Describe())
	}
	return b.String()
}

func (a *app) pkiPermissionsCmd() *cobra.Command {
	var spec pki.PeelSpec
	c := &cobra.Command{
		Use:   "permissions PEEL-ID [--partitions N] [--settings KEYS]",
		Short: "Print the NATS permissions a peel's credentials carry",
		Long: `Print the permission set that enrollment puts in a peel's user JWT
(pki.PeelPermissions, derived from internal/names): what the peel may publish
and subscribe to. Nothing in it opens another peel's keys.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.ID = args[0]
			p, err := pki.PeelPermissions(spec)
			if err != nil {
				return withCode(ExitError, err)
			}
			fmt.Fprintf(a.out, "# peel %s, partition %d of %d\n", spec.ID, shard.Partition(spec.ID, spec.Partitions), spec.Partitions)
			fmt.Fprint(a.out, pki.FormatPermissions(p))
			return nil
		},
	}
	c.Flags().IntVar(&spec.Partitions, "partitions", shard.DefaultPartitions, "partition count of the deployment")
	return c
}

func (a *app) pkiServerConfigCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "server-config [--dir DIR]",
		Short: "Print the operator-mode block for a nats-server configuration file",
		Long: `Print the operator JWT, the system account and a memory resolver preloaded with
the account JWTs, for 'include' in nats-server.conf. It holds no secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pki.Load(dir)
			if err != nil {
				return withCode(ExitError, err)
			}
			fmt.Fprint(a.out, p.ServerConfig())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", pki.DefaultDir, "PKI directory")
	return c
}

func (a *app) tlsCmd() *cobra.Command {
	var dir string
	var hosts []string
	var days int
	initCmd := &cobra.Command{
		Use:   "init --hosts h1,h2 [--dir DIR]",
		Short: "Make a development CA, a server and a client certificate",
		Long: `Make a development CA and, signed by it, a server certificate for --hosts (host
names and IP addresses clients use; also a client certificate for routes, leaf
and gateway links) and a client certificate, ECDSA P-256. Keys are 0600.
Nothing is overwritten. For production, bring your own CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 {
				return withCode(ExitError, fmt.Errorf("--days %d: want at least 1", days))
			}
			f, err := pki.InitTLS(dir, splitList(hosts), time.Duration(days)*24*time.Hour)
			if err != nil {
				return withCode(ExitError, err)
			}
			fmt.Fprintf(a.out, "TLS files in %s (valid until %s) for %s:\n", f.Dir, f.NotAfter.UTC().Format(time.DateOnly), strings.Join(f.Hosts, ", "))
			for _, p := range []string{f.CA, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey} {
				fmt.Fprintln(a.out, "  "+p)
			}
			fmt.Fprintf(a.out, "Keep %s offline once the certificates are issued.\n", f.CAKey)
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", pki.DefaultTLSDir, "directory to write into")
	initCmd.Flags().StringSliceVar(&hosts, "hosts", nil, "host names and IP addresses of the server certificate, comma separated")
	initCmd.Flags().IntVar(&days, "days", 365, "validity in days")
	initCmd.MarkFlagRequired("hosts")
	return group("tls", "TLS certificates for NATS", initCmd)
}
