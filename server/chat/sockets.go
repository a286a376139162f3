package chat

import (
	"encoding/json"
	"time"
)

// SocketInfo describes one Socket.IO socket of a node as the cluster and
// the Socket.IO Admin UI see it: its id, namespace, transport now, client
// address, when it connected, its Socket.IO rooms (the names on the wire)
// and its data ({name} once it gave one).
//
// In JSON it is the Admin UI's serialized socket, which the nodes also
// exchange: {id, clientId, transport, nsp, data, handshake, rooms}. The
// session layer keeps no request headers, query or URL per connection, so
// the handshake lists the address and the time only (headers and query are
// empty objects).
type SocketInfo struct {
	ID, Namespace, Transport, Addr string
	Since                          time.Time
	Rooms                          []string
	Data                           map[string]any
}

// ClientID is what the Admin UI groups sockets by. Node's instrument()
// shows the first 12 characters of the Engine.IO session id; the edge does
// not hand that id out (it would let a reader take over a polling
// session), so each socket is a client of its own, named by its id.
func (i SocketInfo) ClientID() string { return i.ID[:min(12, len(i.ID))] }

// SocketHandshake is a socket's handshake as Socket.IO serializes it
// (issued in milliseconds, as Node's).
type SocketHandshake struct {
	Headers map[string]any `json:"headers"`
	Time    string         `json:"time"`
	Address string         `json:"address"`
	Xdomain bool           `json:"xdomain"`
	Secure  bool           `json:"secure"`
	Issued  int64          `json:"issued"`
	URL     string         `json:"url"`
	Query   map[string]any `json:"query"`
	Auth    map[string]any `json:"auth"`
}

// Handshake returns the socket's handshake.
func (i SocketInfo) Handshake() SocketHandshake {
	return SocketHandshake{
		Headers: map[string]any{},
		Time:    i.Since.UTC().Format(time.RFC1123),
		Address: i.Addr,
		Issued:  i.Since.UnixMilli(),
		URL:     "/socket.io/",
		Query:   map[string]any{},
	}
}

type serializedSocket struct {
	ID        string          `json:"id"`
	ClientID  string          `json:"clientId,omitempty"`
	Transport string          `json:"transport,omitempty"`
	Nsp       string          `json:"nsp"`
	Data      map[string]any  `json:"data"`
	Handshake SocketHandshake `json:"handshake"`
	Rooms     []string        `json:"rooms"`
}

// MarshalJSON writes the Admin UI's serialized socket.
func (i SocketInfo) MarshalJSON() ([]byte, error) {
	data, rooms := i.Data, i.Rooms
	if data == nil {
		data = map[string]any{}
	}
	if rooms == nil {
		rooms = []string{}
	}
	return json.Marshal(serializedSocket{ID: i.ID, ClientID: i.ClientID(), Transport: i.Transport, Nsp: i.Namespace,
		Data: data, Handshake: i.Handshake(), Rooms: rooms})
}

// UnmarshalJSON reads a serialized socket (another node's).
func (i *SocketInfo) UnmarshalJSON(b []byte) error {
	var s serializedSocket
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*i = SocketInfo{ID: s.ID, Namespace: s.Nsp, Transport: s.Transport, Addr: s.Handshake.Address,
		Since: time.UnixMilli(s.Handshake.Issued).UTC(), Rooms: s.Rooms, Data: s.Data}
	if i.Data == nil {
		i.Data = map[string]any{}
	}
	return nil
}
