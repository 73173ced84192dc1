// Package topology starts NATS topologies in-process (for the master's
// embedded default, tests and the load generator) and writes nats-server
// configuration files for production.
//
// # In-process topologies
//
// Every launcher binds loopback addresses only (route, leaf and gateway ports
// are picked up front so restarts keep them), keeps each JetStream store in
// Options.Dir/<server name>, waits until the topology is ready (WaitReady)
// and shuts its servers down in order: leafs first, the hub cluster last.
//
//   - StartSingle: one JetStream server. The embedded default of a small
//     fleet and the cheapest fixture for tests (Replicas 1).
//   - StartCluster: a JetStream cluster "zester" of ClusterSize (3) servers,
//     fully routed. What a production site runs; use it to test replicated
//     buckets (Replicas 3) and failover: StopServer/RestartServer one node.
//   - StartLeaf: a hub (one JetStream server, or a cluster when ClusterSize
//     > 1) and Leafs leaf nodes without JetStream. Peels connect to the
//     leafs (ClientURLs), masters to the hub (HubURLs); the leafs carry the
//     peels' connections and fan-out, the hub keeps all state. Use it for
//     sites or network segments that should hold one uplink each.
//   - StartSuperCluster: Clusters clusters ("hub", "east", …) of ClusterSize
//     servers joined by gateways, one JetStream over all of them, optionally
//     Leafs leaf nodes per cluster. JetStream assets belong in the hub cluster
//     (Placement "hub": KeyValueConfig.Placement = {Cluster: "hub"}, which
//     (*Topology).KeyValueConfig fills in); clients of any cluster use them
//     through the gateways. Use it for regions.
//
// Options.Mappings installs subject mappings on every server, typically
// names.PartitionMapping(n): zester.in.<peel>.<kind…> →
// zester.inp.<partition>.<peel>.<kind…>, whose partition package shard
// computes client-side.
//
// # JetStream through leaf nodes
//
// nats-server (v2.15) denies the plain JetStream API ($JS.API.>, $KV.>,
// $OBJ.>) on every leaf-node link of a non-system account, whatever the
// JetStream setup of either side: a client of a leaf without JetStream gets
// "jetstream not enabled". Two ways through, both tested here:
//
//   - Plain, the default (no Options.JetStreamDomain, no
//     GenOptions.HubDomain): every server of a topology with leaf nodes gets
//     default_js_domain {"$G": ""} (server.Options.JsAccDefaultDomain), which
//     lifts that deny for the global account; it is needed on both ends of a
//     link. Clients use jetstream.New everywhere and everything works, direct
//     gets across gateways included. nats-server logs that this option "is a
//     temporary backwards compatibility measure and will be removed":
//     re-check on every server upgrade (TestLeaf and TestSuperCluster fail if
//     it stops working).
//   - Domain (Options.JetStreamDomain / GenOptions.HubDomain): the JetStream
//     servers get a domain and leaf clients must use
//     jetstream.NewWithDomain(nc, domain) ((*Topology).JetStream does); its
//     $JS.<domain>.API.… requests (KV puts: $JS.<domain>.API.$KV.…) cross the
//     link and the hub maps them back. This is the supported mechanism, but
//     in v2.15.2 a direct get (kv.Get on a bucket with AllowDirect, nats.go's
//     default) from a leaf attached to a cluster holding no replica of the
//     stream, across a gateway, is dropped: the mapped request carries no
//     queue filter and sendMsgToGateways then skips the replicas' "_sys_"
//     queue group (TestSuperClusterDomain logs it). Buckets read from such
//     leafs need AllowDirect=false (reads go through the stream leader), or
//     the leafs must attach to the hub cluster.
//
// A leaf that runs its own JetStream must use domains: its own
// (GenOptions.JetStreamDomain) and the hub's (GenOptions.HubDomain).
//
// # Compression
//
// nats-server v2.15 compresses routes (cluster.compression, default
// "accept": only if the peer asks) and leaf-node links (leafnodes.compression
// and per remote, default "s2_auto"); gateways have no compression setting.
// Leaf links here default to "s2_fast": an open issue (nats-server #7037)
// reports s2_auto spiralling in CPU and GC on leaf links. Generate uses
// GenOptions.Compression (default s2_fast) for routes and leaf links.
//
// # Production configuration
//
// Generate writes one nats-server config per server of a deployment (each
// on its own host): jetstream { store_dir, domain }, http_port, cluster
// { name, listen, routes, compression }, leafnodes { listen | remotes,
// compression }, gateway { name, listen, gateways }, the partition mapping,
// and what the kind needs besides (a system account where leaf nodes and
// gateways meet, default_js_domain for plain JetStream through leafs). Check
// a file with `nats-server -t -c FILE`; the tests run that check on every
// kind and also start generated deployments on loopback.
package topology
