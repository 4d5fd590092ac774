package discover

import (
	"testing"
	"time"
)

func TestDefaultOptionsAreUpstream(t *testing.T) {
	o := DefaultOptions()
	if o.Port != 9999 || string(o.Message) != "DISCOVER_SERVER" || string(o.Prefix) != "SERVER_IP:" ||
		o.Timeout != 5*time.Second || o.Retries != 3 || !o.SubnetScan || o.DefaultPort != 8000 ||
		o.AddressFrom != AddressAuto || o.ScanRate != 1000 || o.MaxReplies != 100000 ||
		o.MaxDatagram != 1024 || o.RecvBuffer != 8<<20 || o.MaxTokenAge != time.Minute || o.ClockSkew != 30*time.Second {
		t.Fatalf("DefaultOptions = %+v", o)
	}
}
