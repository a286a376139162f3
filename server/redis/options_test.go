package redis

import "testing"

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
