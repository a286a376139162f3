package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/scalable-chat-go/server/chat"
)

// A message of a room other than the global one is a record with the
// message id as its key, chat-event: room-message and room; it decodes to
// the same message. A message of the global room has neither header.
func TestRoomMessageRecordRoundTrip(t *testing.T) {
	m := chat.Message{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", Text: "in a room", Username: "Zoë", UserID: "auth0|zoe",
		Room: "0193a1b2-0000-7000-8000-000000000001", CreatedAt: time.Date(2026, 12, 7, 12, 0, 0, 5e6, time.UTC)}
	p := newRecord("MESSAGES", m)
	r := consumed(t, p)
	if string(r.Key) != m.ID {
		t.Fatalf("key %q, want the message id", r.Key)
	}
	headers := map[string]string{}
	for _, h := range r.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	if headers[HeaderEvent] != EventRoomMessage || headers[HeaderRoom] != m.Room {
		t.Fatalf("headers %v: want %s: %s and %s: the room", headers, HeaderEvent, EventRoomMessage, HeaderRoom)
	}
	got, del, err := decodeRecord(r)
	if err != nil || del != nil || got != m {
		t.Fatalf("decodeRecord = %+v %+v %v; want %+v", got, del, err, m)
	}

	global := m
	global.Room = ""
	for _, h := range consumed(t, newRecord("MESSAGES", global)).Headers {
		if k := string(h.Key); k == HeaderEvent || k == HeaderRoom {
			t.Fatalf("a message of the global room has a %s header", k)
		}
	}
}

// A room header anywhere but on a room's message, or a room's message
// without its id or room, is a dead letter: never a message of the global
// room, never a message of no room.
func TestRoomHeadersOutOfPlaceAreUndecodable(t *testing.T) {
	ok := []sarama.RecordHeader{{Key: []byte(HeaderID), Value: []byte("x")}, {Key: []byte(HeaderUsername), Value: []byte("u")},
		{Key: []byte(HeaderCreatedAt), Value: []byte("2026-12-07T12:00:00.000Z")}}
	event := func(v string) sarama.RecordHeader {
		return sarama.RecordHeader{Key: []byte(HeaderEvent), Value: []byte(v)}
	}
	room := func(v string) sarama.RecordHeader {
		return sarama.RecordHeader{Key: []byte(HeaderRoom), Value: []byte(v)}
	}
	for name, headers := range map[string][]sarama.RecordHeader{
		"a room without the event":      append(ok[:3:3], room("r1")),
		"a room's message without room": append(ok[:3:3], event(EventRoomMessage)),
		"an empty room":                 append(ok[:3:3], event(EventRoomMessage), room("")),
		"a room that is not UTF-8":      append(ok[:3:3], event(EventRoomMessage), room("\xff")),
		"a room too long":               append(ok[:3:3], event(EventRoomMessage), room(string(make([]byte, maxIDLength+1)))),
		"a room's message with no id":   {ok[1], ok[2], event(EventRoomMessage), room("r1")},
		"a deletion with a room": {event(EventDeleted), {Key: []byte(HeaderID), Value: []byte("x")},
			{Key: []byte(HeaderDeletedAt), Value: []byte("2026-12-07T12:00:00.000Z")}, room("r1")},
	} {
		r := &sarama.ConsumerMessage{Key: []byte("x"), Value: []byte("text")}
		for _, h := range headers {
			r.Headers = append(r.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if m, del, err := decodeRecord(r); !errors.Is(err, errUndecodable) {
			t.Errorf("%s: %+v %+v %v, want undecodable", name, m, del, err)
		}
	}
}
