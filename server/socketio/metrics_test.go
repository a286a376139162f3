package socketio

import "testing"

func TestDeliveryLabel(t *testing.T) {
	for in, want := range map[string]string{"message": "message", "typing": "typing", "presence": "presence", "anything": "other"} {
		if got := deliveryLabel(in); got != want {
			t.Errorf("deliveryLabel(%q) = %q", in, got)
		}
	}
}
