package redis

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
)

// fakeCluster records what an answeringAdapter sends on.
type fakeCluster struct {
	sioadapter.ClusterAdapter
	sent *sioadapter.ClusterResponse
}

func (f *fakeCluster) DoPublishResponse(_ sioadapter.ServerId, r *sioadapter.ClusterResponse) error {
	f.sent = r
	return nil
}

func TestAnsweringAdapterListsThisNodesSockets(t *testing.T) {
	mine := []*sioadapter.SocketResponse{socketResponse(chat.SocketInfo{ID: "abcdefghijklmnopqrst", Namespace: "/", Transport: "websocket",
		Addr: "10.0.0.7", Since: time.UnixMilli(1_700_000_000_000), Rooms: []string{"abcdefghijklmnopqrst", "chat:live"},
		Data: map[string]any{"name": "ann"}})}
	sink := socket.SocketId("the-sink-id-of-24-chars")
	tests := []struct {
		name   string
		answer []*sioadapter.SocketResponse // what the library answered
		want   []string                     // ids sent on
	}{
		{"a fetch of every socket matched the sink", []*sioadapter.SocketResponse{{Id: sink}}, []string{"abcdefghijklmnopqrst"}},
		{"a fetch by room matched nothing", nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCluster{}
			a := &answeringAdapter{ClusterAdapter: f, answer: func() []*sioadapter.SocketResponse { return mine }}
			a.setSink(sink)
			err := a.DoPublishResponse("node-b", &sioadapter.ClusterResponse{Type: sioadapter.FETCH_SOCKETS_RESPONSE,
				Data: &sioadapter.FetchSocketsResponse{RequestId: "r1", Sockets: tt.answer}})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(f.sent)
			if err != nil {
				t.Fatal(err)
			}
			var wire struct {
				Data struct {
					RequestID string `json:"requestId"`
					Sockets   []struct {
						ID        string         `json:"id"`
						Rooms     []string       `json:"rooms"`
						Data      map[string]any `json:"data"`
						Handshake map[string]any `json:"handshake"`
					} `json:"sockets"`
				} `json:"data"`
			}
			if err := json.Unmarshal(b, &wire); err != nil {
				t.Fatal(err)
			}
			// Node's adapter reads response.data.sockets without a check:
			// an empty list must be on the wire.
			if !strings.Contains(string(b), `"sockets":[`) {
				t.Fatalf("no sockets list on the wire: %s", b)
			}
			got := []string{}
			for _, s := range wire.Data.Sockets {
				got = append(got, s.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || wire.Data.RequestID != "r1" {
				t.Fatalf("sent %s", b)
			}
			if len(wire.Data.Sockets) == 1 {
				s := wire.Data.Sockets[0]
				admin, _ := s.Data["_admin"].(map[string]any)
				if s.Data["name"] != "ann" || admin["clientId"] != "abcdefghijkl" || admin["transport"] != "websocket" ||
					s.Handshake["address"] != "10.0.0.7" || s.Handshake["issued"] != float64(1_700_000_000_000) ||
					strings.Join(s.Rooms, ",") != "abcdefghijklmnopqrst,chat:live" {
					t.Fatalf("socket on the wire: %s", b)
				}
			}
		})
	}
}

func TestAnsweringAdapterPassesOtherResponses(t *testing.T) {
	f := &fakeCluster{}
	a := &answeringAdapter{ClusterAdapter: f, answer: func() []*sioadapter.SocketResponse { t.Fatal("asked"); return nil }}
	r := &sioadapter.ClusterResponse{Type: sioadapter.BROADCAST_ACK, Data: &sioadapter.BroadcastAck{RequestId: "x"}}
	if err := a.DoPublishResponse("b", r); err != nil || f.sent != r {
		t.Fatalf("sent %v, %v", f.sent, err)
	}
}
