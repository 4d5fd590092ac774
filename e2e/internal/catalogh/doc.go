// Package catalogh is the catalog-mode lab of the end-to-end tests: two LAN
// segments of `bridge respond` servers (10.213.31.0/24 and 10.213.32.0/24),
// bridges with one leg on their segment and one on the Consul network
// (10.213.30.0/24), and Consul on that network: a three-server cluster
// (Lab.StartCluster), the same with ACLs on, default deny
// (Lab.StartACLCluster, with ACLToken to make tokens of a policy), or one
// dev agent (Lab.StartDevConsul). Every bridge's whitelist is pinned to its
// segment leg. Nothing runs in the root namespace.
//
// The read helpers (Entries, Passing, Lab.WaitCatalog, Lab.ServiceIndex,
// Lab.Leader, Poller ...) read what the bridges wrote to Consul; Start10k
// builds the lab of the 10,000-server tests.
package catalogh
