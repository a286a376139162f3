package kafka

import (
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/scalable-chat-go/server/chat"
)

// consumed turns a produced record into what a consumer reads.
func consumed(t testing.TB, p *sarama.ProducerMessage) *sarama.ConsumerMessage {
	t.Helper()
	r := &sarama.ConsumerMessage{Topic: p.Topic, Timestamp: p.Timestamp}
	if p.Key != nil {
		r.Key, _ = p.Key.Encode()
	}
	if p.Value != nil {
		r.Value, _ = p.Value.Encode()
	}
	for _, h := range p.Headers {
		r.Headers = append(r.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r
}

func TestDeletionRecordRoundTrip(t *testing.T) {
	d := chat.Deletion{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", By: "auth0|mod", At: time.Date(2026, 12, 3, 13, 0, 0, 123e6, time.UTC)}
	p := deletionRecord("MESSAGES", d)
	r := consumed(t, p)
	if string(r.Key) != d.ID || r.Value == nil || len(r.Value) != 0 {
		t.Fatalf("key %q value %q: want the message id and an empty (not null) value", r.Key, r.Value)
	}
	m, del, err := decodeRecord(r)
	if err != nil || del == nil || *del != d || m.ID != "" {
		t.Fatalf("decodeRecord = %+v %+v %v, want %+v", m, del, err, d)
	}
	// A message record is still a message, with its user id.
	msg := chat.Message{ID: "x", Text: "hi", Username: "Zoë", UserID: "sub-1", CreatedAt: d.At}
	m, del, err = decodeRecord(consumed(t, newRecord("MESSAGES", msg)))
	if err != nil || del != nil || m != msg {
		t.Fatalf("a message record: %+v %+v %v", m, del, err)
	}
	// An event this version does not know, or a deletion without its
	// headers, is a dead letter, never a message.
	for _, bad := range [][]sarama.RecordHeader{
		{{Key: []byte(HeaderEvent), Value: []byte("message-edited")}, {Key: []byte(HeaderID), Value: []byte("x")}},
		{{Key: []byte(HeaderEvent), Value: []byte(EventDeleted)}},
		{{Key: []byte(HeaderEvent), Value: []byte(EventDeleted)}, {Key: []byte(HeaderID), Value: []byte("x")}},
		{{Key: []byte(HeaderEvent), Value: []byte(EventDeleted)}, {Key: []byte(HeaderID), Value: []byte("x")}, {Key: []byte(HeaderDeletedAt), Value: []byte("yesterday")}},
	} {
		r := &sarama.ConsumerMessage{Key: []byte("x"), Value: []byte{}}
		for _, h := range bad {
			r.Headers = append(r.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if _, _, err := decodeRecord(r); !errors.Is(err, errUndecodable) {
			t.Errorf("headers %q: err %v, want undecodable", bad, err)
		}
	}
}

// FuzzDecodeDeletion feeds decodeRecord records marked as deletions with
// any id, author, time and value: one that decodes gives a tombstone that
// deletionRecord encodes into a record decoding to the same tombstone; any
// other is undecodable (a dead letter), never a message.
func FuzzDecodeDeletion(f *testing.F) {
	f.Add("0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", "auth0|mod", "2026-12-03T13:00:00.123Z", EventDeleted, []byte(""), true)
	f.Add("x", "", "2026-12-03T13:00:00+01:00", EventDeleted, []byte("ignored"), true)
	f.Add("x", "mod", "not a time", "message-edited", []byte(nil), false)
	f.Fuzz(func(t *testing.T, id, by, at, event string, value []byte, withAt bool) {
		r := &sarama.ConsumerMessage{Topic: "MESSAGES", Key: []byte(id), Value: value}
		r.Headers = []*sarama.RecordHeader{{Key: []byte(HeaderEvent), Value: []byte(event)}, {Key: []byte(HeaderID), Value: []byte(id)},
			{Key: []byte(HeaderDeletedBy), Value: []byte(by)}}
		if withAt {
			r.Headers = append(r.Headers, &sarama.RecordHeader{Key: []byte(HeaderDeletedAt), Value: []byte(at)})
		}
		m, del, err := decodeRecord(r)
		if err != nil {
			if !errors.Is(err, errUndecodable) {
				t.Fatalf("refused with %v, not as undecodable", err)
			}
			return
		}
		if del == nil || m.ID != "" {
			t.Fatalf("a record marked %q decoded as a message %+v", event, m)
		}
		if del.ID == "" || !utf8.ValidString(del.ID) || !utf8.ValidString(del.By) || del.At.Location() != time.UTC || del.At.Nanosecond()%1e6 != 0 {
			t.Fatalf("invalid tombstone %+v", del)
		}
		_, again, err := decodeRecord(consumed(t, deletionRecord("MESSAGES", *del)))
		if err != nil || again == nil || *again != *del {
			t.Fatalf("re-encoded: %+v %v, want %+v", again, err, del)
		}
	})
}
