// Package consulclient is what both modes of the Consul sink (packages
// agent and catalog) share: the client (its failover across several
// addresses, the TLS roots, the token file re-read on rotation, the notes
// of rate-limit answers), the classification of Consul's ACL and rate-limit
// refusals, the lock and its terms of leadership, the doctor's dry
// transactions, and the names, meta and settings every registration
// carries (SharedConfig). It knows neither mode.
package consulclient
