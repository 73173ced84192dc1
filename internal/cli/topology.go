package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zester-io/zester/topology"
)

func init() {
	extraCommands = append(extraCommands, func(a *app) *cobra.Command {
		c := &cobra.Command{Use: "topology", Short: "NATS topologies for Zester"}
		c.AddCommand(a.topologyGenCmd())
		return c
	})
}

func (a *app) topologyGenCmd() *cobra.Command {
	var o topology.GenOptions
	var out string
	var routes, remotes, gateways []string
	c := &cobra.Command{
		Use:   "gen --kind single|cluster|leaf|supercluster [flags]",
		Short: "Write nats-server configuration files for a production deployment",
		Long: `Write nats-server configuration files: JetStream store under /var/lib/zester/nats,
monitoring on 8222, routes, leaf nodes and gateways, s2 compression on routes and
leaf links, and the partition subject mapping the masters use. Check a file with
'nats-server -t -c FILE'.

Examples:
  zester topology gen --kind single --out /etc/nats
  zester topology gen --kind cluster --routes n1:6222,n2:6222,n3:6222
  zester topology gen --kind leaf --routes hub1:6222,hub2:6222,hub3:6222 --leafs 4
  zester topology gen --kind supercluster --gateway hub=h1:7222,h2:7222,h3:7222 --gateway east=e1:7222,e2:7222,e3:7222 --leafs 2`,
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
			files, err := topology.Generate(o)
			if err != nil {
				return withCode(ExitError, err)
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return withCode(ExitError, err)
			}
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				p := filepath.Join(out, n)
				if err := os.WriteFile(p, files[n], 0o644); err != nil {
					return withCode(ExitError, err)
				}
				fmt.Fprintln(a.out, p)
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
	return c
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
