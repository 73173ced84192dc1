package cli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/topology"
)

func (a *app) topologyCmd() *cobra.Command {
	return group("topology", "NATS topologies for Zester", a.topologyGenCmd())
}

func (a *app) topologyGenCmd() *cobra.Command {
	var o topology.GenOptions
	var out string
	var routes, remotes, gateways []string
	var sysPasswordFile string
	var pkiDir, tlsDir string
	var tlsVerify bool
	c := &cobra.Command{
		Use:   "gen --kind single|cluster|leaf|supercluster [flags]",
		Short: "Write nats-server configuration files for a production deployment",
		Long: `Write nats-server configuration files: JetStream store under /var/lib/zester/nats,
monitoring on 8222, routes, leaf nodes and gateways, s2 compression on routes and
leaf links, and the partition subject mapping the masters use. Check a file with
'nats-server -t -c FILE'.

Every server gets a system account with one user (--sys-user, default sys) for
operator tools such as 'nats server report jetstream'. Its password comes from
--sys-password-file, or is made at random and written to OUT/sys-password
(mode 0600; kept and reused when it is already there). The configs hold only
its bcrypt hash. Clients without credentials still use the global account.

--lab lays a cluster out on one host: node i listens on port+i, monitor+i,
leaf-port+i and routes on cluster-port+i, with its store in STORE-DIR/n<i+1>.

--pki-dir DIR writes operator-mode configs from the Zester PKI in DIR (zester
pki init): the operator JWT, the system account and a memory resolver preloaded
with the account JWTs, so no client without credentials of that PKI connects
(the secure default; no system user password then: use DIR/sys.creds). Leaf
nodes dial their hub with OUT/leaf.creds (made once, 0600; copy it to
--leaf-creds on the leaf hosts), a user limited to what peels may send. The
partition count comes from the account JWT.

--tls-dir DIR turns on TLS for clients, routes, leaf links and gateways from
DIR/ca.pem, DIR/server.pem and DIR/server-key.pem on every server's host
(zester tls init --hosts ...; the server certificate also serves as the
client certificate of routes and links). --tls-verify also requires client
certificates of every client.

Examples:
  zester topology gen --kind single --out /etc/nats
  zester topology gen --kind cluster --routes n1:6222,n2:6222,n3:6222
  zester topology gen --kind cluster --lab --store-dir /tmp/zester-lab --out ./lab
  zester topology gen --kind leaf --routes hub1:6222,hub2:6222,hub3:6222 --leafs 4
  zester topology gen --kind supercluster --gateway hub=h1:7222,h2:7222,h3:7222 --gateway east=e1:7222,e2:7222,e3:7222 --leafs 2
  zester topology gen --kind leaf --routes hub1:6222,hub2:6222,hub3:6222 --pki-dir /etc/zester/pki --tls-dir /etc/zester/tls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Routes = splitList(routes)
			o.LeafRemotes = splitList(remotes)
			if len(gateways) > 0 {
				o.Gateways = map[string][]string{}
				for _, g := range gateways {
					name, urls, ok := strings.Cut(g, "=")
					if !ok || name == "" || urls == "" {
						return withCode(ExitError, fmt.Errorf("--gateway %q: want NAME=host:port,host:port", g))
					}
					o.Gateways[name] = splitList([]string{urls})
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return withCode(ExitError, err)
			}
			if tlsDir != "" {
				o.TLS = &topology.GenTLS{CA: filepath.Join(tlsDir, pki.FileCA), Cert: filepath.Join(tlsDir, pki.FileServerCert),
					Key: filepath.Join(tlsDir, pki.FileServerKey), VerifyClients: tlsVerify}
			} else if tlsVerify {
				return withCode(ExitError, errors.New("--tls-verify needs --tls-dir"))
			}
			var pwFile, leafFile string
			var made bool
			var err error
			if pkiDir != "" {
				if leafFile, err = genOperatorMode(&o, pkiDir, out, cmd.Flags().Changed("partitions")); err != nil {
					return withCode(ExitError, err)
				}
			} else if pwFile, made, err = sysPassword(&o, out, sysPasswordFile); err != nil {
				return withCode(ExitError, err)
			}
			files, err := topology.Generate(o)
			if err != nil {
				if made {
					os.Remove(pwFile)
				}
				return withCode(ExitError, err)
			}
			names := slices.Sorted(maps.Keys(files))
			for _, n := range names {
				p := filepath.Join(out, n)
				if err := os.WriteFile(p, files[n], 0o644); err != nil {
					return withCode(ExitError, err)
				}
				fmt.Fprintln(a.out, p)
			}
			if pkiDir != "" {
				fmt.Fprintf(a.errOut, "operator mode from %s: clients need its credentials; for example:\n  nats --server %s --creds %s server report jetstream\n",
					pkiDir, exampleURL(o), filepath.Join(pkiDir, pki.FileSysCreds))
				if leafFile != "" {
					fmt.Fprintf(a.errOut, "leaf nodes: copy %s to %s on every leaf host (mode 0600)\n", leafFile, o.LeafCreds)
				}
			} else {
				fmt.Fprintf(a.errOut, "system account user %q, password in %s; for example:\n  nats --server %s --user %s --password \"$(cat %s)\" server report jetstream\n",
					orDefault(o.SysUser, topology.DefaultSysUser), pwFile, exampleURL(o), orDefault(o.SysUser, topology.DefaultSysUser), pwFile)
			}
			if o.Lab {
				var urls []string
				for i := range len(files) {
					urls = append(urls, exampleURL(topology.GenOptions{Lab: true, Host: o.Host, Port: orPort(o.Port) + i}))
				}
				fmt.Fprintf(a.errOut, "lab: start every node with nats-server -c %s/nN.conf; nats.url for master.yaml and peel.yaml: %s\n", out, strings.Join(urls, ","))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Kind, "kind", "single", "single, cluster, leaf or supercluster")
	f.StringVar(&o.Name, "name", "", "server name (prefix of every node's name)")
	f.StringVar(&o.Cluster, "cluster", "", "cluster name (cluster, clustered leaf hub)")
	f.StringVar(&o.Host, "host", "", "address every listener binds (default 0.0.0.0)")
	f.IntVar(&o.Port, "port", 0, "client port (default 4222)")
	f.IntVar(&o.Monitor, "monitor", 0, "monitoring port (default 8222, -1 off)")
	f.StringSliceVar(&routes, "routes", nil, "route addresses host:port of every cluster node, in node order")
	f.IntVar(&o.LeafPort, "leaf-port", 0, "leaf-node listener port (default 7422)")
	f.IntVar(&o.Leafs, "leafs", 0, "number of leaf-node configs")
	f.StringSliceVar(&remotes, "leaf-remotes", nil, "URLs the leaf nodes dial (default: every hub node)")
	f.StringArrayVar(&gateways, "gateway", nil, "supercluster cluster NAME=host:port,... (repeat per cluster)")
	f.StringVar(&o.StoreDir, "store-dir", "", "JetStream store directory (default /var/lib/zester/nats)")
	f.IntVar(&o.Partitions, "partitions", 0, "partitions of the peel mapping (default 64; must match master.yaml)")
	f.StringVar(&o.HubDomain, "hub-domain", "", "JetStream domain of the hub servers")
	f.StringVar(&o.Compression, "compression", "", "route and leaf compression (default s2_fast)")
	f.StringVar(&out, "out", "nats-config", "directory to write the files into")
	f.StringVar(&o.SysUser, "sys-user", "", "system account user (default sys)")
	f.StringVar(&sysPasswordFile, "sys-password-file", "", "file holding the system user's password (default: OUT/sys-password, made at random)")
	f.BoolVar(&o.Lab, "lab", false, "cluster: every node on this host, with its own ports and store dir")
	f.IntVar(&o.Nodes, "nodes", 0, "lab cluster: number of nodes (default 3)")
	f.IntVar(&o.ClusterPort, "cluster-port", 0, "route port (supercluster; lab cluster: of node 1) (default 6222)")
	f.StringVar(&pkiDir, "pki-dir", "", "operator mode from the Zester PKI in this directory (zester pki init)")
	f.StringVar(&o.LeafCreds, "leaf-creds", defaultLeafCreds, "operator mode: path of the leaf nodes' link credentials on their hosts")
	f.StringVar(&tlsDir, "tls-dir", "", "TLS from ca.pem, server.pem, server-key.pem in this directory on the servers' hosts")
	f.BoolVar(&tlsVerify, "tls-verify", false, "with --tls-dir: require a client certificate of every client")
	return c
}

// defaultLeafCreds is where a leaf host keeps its link credentials.
const defaultLeafCreds = "/etc/zester/leaf.creds"

// leafCredsFileName is the link credentials topology gen writes beside the
// configs.
const leafCredsFileName = "leaf.creds"

// genOperatorMode fills o from the PKI in dir and, when the deployment has
// leaf nodes, makes OUT/leaf.creds (once: an existing file is kept). It
// returns the credentials file it made or kept ("" without leafs).
func genOperatorMode(o *topology.GenOptions, dir, out string, partitionsGiven bool) (string, error) {
	p, err := pki.Load(dir)
	if err != nil {
		return "", fmt.Errorf("--pki-dir: %w", err)
	}
	n, err := p.Partitions()
	if err != nil {
		return "", fmt.Errorf("--pki-dir: %w", err)
	}
	if partitionsGiven && o.Partitions != n {
		return "", fmt.Errorf("--partitions %d: the account JWT in %s maps peels to %d partitions", o.Partitions, dir, n)
	}
	o.Partitions, o.Operator, o.Account = n, p.ServerConfig(), p.AccountKey()
	if o.Kind != topology.KindLeaf && o.Leafs == 0 {
		return "", nil
	}
	file := filepath.Join(out, leafCredsFileName)
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	creds, err := p.IssueLeaf("leaf")
	if err != nil {
		return "", err
	}
	if err := writeSecret(file, creds); err != nil {
		return "", err
	}
	return file, nil
}

// sysPasswordFileName is where topology gen keeps the system user's
// password it made, beside the configs.
const sysPasswordFileName = "sys-password"

// sysPassword sets o.SysPassword from file, or from OUT/sys-password, which
// it creates (0600, random) when missing; it returns the file and whether it
// made it.
func sysPassword(o *topology.GenOptions, out, file string) (string, bool, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("--sys-password-file: %w", err)
		}
		o.SysPassword = strings.TrimRight(string(b), "\r\n")
		return file, false, nil
	}
	file = filepath.Join(out, sysPasswordFileName)
	if b, err := os.ReadFile(file); err == nil {
		o.SysPassword = strings.TrimRight(string(b), "\r\n")
		return file, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, err
	}
	o.SysPassword = base64.RawURLEncoding.EncodeToString(raw[:])
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, err
	}
	if _, err := f.WriteString(o.SysPassword + "\n"); err != nil {
		f.Close()
		os.Remove(file)
		return "", false, err
	}
	if err := f.Close(); err != nil {
		os.Remove(file)
		return "", false, err
	}
	return file, true, nil
}

func orPort(p int) int {
	if p == 0 {
		return topology.DefaultClientPort
	}
	return p
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// exampleURL is a client URL of the first server, for the printed hint.
func exampleURL(o topology.GenOptions) string {
	host := o.Host
	switch {
	case o.Lab && host == "":
		host = "127.0.0.1"
	case host == "" || host == "0.0.0.0":
		host = "127.0.0.1"
		if len(o.Routes) > 0 {
			if h, _, err := net.SplitHostPort(o.Routes[0]); err == nil {
				host = h
			}
		}
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(orPort(o.Port)))
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
