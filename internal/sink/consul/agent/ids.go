package agent

import "github.com/udp-discovery-bridge/bridge/internal/sink/consul/consulclient"

// BridgeServiceID is the ID of the bridge's own service for bridgeID.
func BridgeServiceID(bridgeID string) string {
	return consulclient.SanitizeID(consulclient.BridgeServiceName + "-" + bridgeID)
}

// bridgeCheckID is the ID of the bridge's heartbeat TTL check.
func bridgeCheckID(bridgeID string) string {
	return BridgeServiceID(bridgeID) + ":ttl"
}

// appCheckID is the ID of the bridge's app check on the server whose
// service ID is serviceID (agent mode).
func appCheckID(serviceID string) string { return serviceID + ":app" }

// appChecksFilter returns the server-side filter that selects the app
// checks of the servers registered under service (of every bridge: the
// caller keeps those of the services it owns).
func appChecksFilter(service string) (string, error) {
	q, err := consulclient.QuoteFilterString(service)
	if err != nil {
		return "", err
	}
	return `Name == "` + AppCheckName + `" and ServiceName == ` + q, nil
}

// ownedFilter returns the server-side filter that selects the services a
// bridge with bridgeID owns.
func ownedFilter(bridgeID string) (string, error) {
	q, err := consulclient.QuoteFilterString(bridgeID)
	if err != nil {
		return "", err
	}
	return `Meta["` + consulclient.MetaManagedBy + `"] == "` + consulclient.ManagedByValue + `" and Meta["` + consulclient.MetaBridgeID + `"] == ` + q, nil
}
