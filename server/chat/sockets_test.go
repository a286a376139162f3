package chat

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A socket is written as the Admin UI's serialized socket, and read back.
func TestSocketInfoJSON(t *testing.T) {
	info := SocketInfo{ID: "s1", Namespace: "/", Transport: "polling", Addr: "127.0.0.1", Since: time.UnixMilli(5000),
		Rooms: []string{"s1", "chat:live"}, Data: map[string]any{"name": "ann"}}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	hs, _ := got["handshake"].(map[string]any)
	if got["id"] != "s1" || got["clientId"] != "s1" || got["transport"] != "polling" || got["nsp"] != "/" ||
		hs["address"] != "127.0.0.1" || hs["issued"] != float64(5000) || hs["headers"] == nil || hs["query"] == nil ||
		hs["time"] != "Thu, 01 Jan 1970 00:00:05 UTC" || hs["url"] != "/socket.io/" {
		t.Fatalf("serialized socket: %s", b)
	}
	var back SocketInfo
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != "s1" || back.Addr != "127.0.0.1" || !back.Since.Equal(info.Since) || len(back.Rooms) != 2 ||
		back.Data["name"] != "ann" || back.Transport != "polling" || back.Namespace != "/" {
		t.Fatalf("read back: %+v", back)
	}
	// No data and no rooms are written as empty, not null; a long id's
	// client id is its first 12 characters.
	b, _ = json.Marshal(SocketInfo{ID: "abcdefghijklmnop"})
	if s := string(b); !strings.Contains(s, `"data":{}`) || !strings.Contains(s, `"rooms":[]`) || !strings.Contains(s, `"clientId":"abcdefghijkl"`) {
		t.Fatalf("empty socket: %s", s)
	}
	if err := json.Unmarshal([]byte(`{"id":1}`), &back); err == nil {
		t.Fatal("a socket whose id is a number was read")
	}
}
