package redis

import (
	"strings"
	"testing"
	"time"
)

// Pub/sub over RESP3 loses messages in go-redis's push processor (see
// clientOptions): the client must speak RESP2 even when the URL asks for 3.
func TestClientOptionsSpeakRESP2(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0?protocol=3"} {
		opts, err := clientOptions(Options{URL: u})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if opts.Protocol != 2 {
			t.Errorf("%s: protocol %d, want 2", u, opts.Protocol)
		}
	}
}

// The mode, key prefix and request timeout are the configuration's to
// decide: Open refuses options without them, naming the setting.
func TestOptionsAreExplicit(t *testing.T) {
	full := Options{URL: "redis://127.0.0.1:1", Mode: ModeSharded, KeyPrefix: "socket.io", RequestTimeout: time.Second}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Mode = "" }, "REDIS_ADAPTER_MODE"},
		{func(o *Options) { o.KeyPrefix = "" }, "REDIS_KEY_PREFIX"},
		{func(o *Options) { o.RequestTimeout = 0 }, "REDIS_REQUEST_TIMEOUT"},
	} {
		o := full
		tc.change(&o)
		if err := o.defaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("options without %s: %v", tc.want, err)
		}
	}
	if err := full.defaults(); err != nil {
		t.Errorf("every option given: %v", err)
	}
}
