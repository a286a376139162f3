package kafka

import (
	"bytes"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
)

// Header layout of FuzzDecodeRecord's flags: which headers the record
// carries, and which oddities.
const (
	fuzzID        = 1 << iota // an id header
	fuzzUsername              // a username header
	fuzzCreatedAt             // a created-at header
	fuzzNilKey                // no key at all
	fuzzNilValue              // no value (a tombstone)
	fuzzOther                 // an unrelated header first
	fuzzNilHeader             // a nil header in the list
	fuzzDuplicate             // a second id header, last one wins
)

// FuzzDecodeRecord feeds decode what a broker can hand the consumer: any
// key, value, headers (present or not, duplicated, nil), time stamp and
// position, in the Go server's format or the original's.
//
// A record that decodes must give a valid message (UTF-8 text as it was, an
// id, a UTC time in whole milliseconds; the original format's id and empty
// username) that newRecord encodes into a record decoding to the same
// message. A record that does not decode must be refused as undecodable,
// and its dead letter must carry its key, value and headers as they were.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"), []byte("héllo"), "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", "Zoë",
		"2026-03-04T05:06:07.891Z", uint8(fuzzID|fuzzUsername|fuzzCreatedAt), int64(1772600767891), int64(41), int32(2))
	f.Add([]byte("message-1772600767891"), []byte("hi from node"), "", "", "", uint8(0), int64(0), int64(7), int32(0))
	f.Fuzz(func(t *testing.T, key, value []byte, id, username, createdAt string, flags uint8, tsMillis, offset int64, partition int32) {
		r := &sarama.ConsumerMessage{Topic: "MESSAGES", Partition: partition, Offset: offset, Key: key, Value: value}
		if flags&fuzzNilKey != 0 {
			r.Key = nil
		}
		if flags&fuzzNilValue != 0 {
			r.Value = nil
		}
		if tsMillis != 0 {
			r.Timestamp = time.UnixMilli(tsMillis)
		}
		header := func(k, v string) {
			r.Headers = append(r.Headers, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
		if flags&fuzzOther != 0 {
			header("traceparent", username)
		}
		if flags&fuzzDuplicate != 0 {
			header(HeaderID, username)
		}
		if flags&fuzzID != 0 {
			header(HeaderID, id)
		}
		if flags&fuzzNilHeader != 0 {
			r.Headers = append(r.Headers, nil)
		}
		if flags&fuzzUsername != 0 {
			header(HeaderUsername, username)
		}
		if flags&fuzzCreatedAt != 0 {
			header(HeaderCreatedAt, createdAt)
		}

		m, err := decode(r)
		if err != nil {
			if !errors.Is(err, errUndecodable) {
				t.Fatalf("decode refused the record with %v, not as undecodable", err)
			}
			checkDeadLetter(t, r, err.Error())
			return
		}
		if m.Text != string(r.Value) || !utf8.ValidString(m.Text) {
			t.Fatalf("text %q from the value %q", m.Text, r.Value)
		}
		if m.ID == "" || len(m.ID) > maxIDLength || !utf8.ValidString(m.ID) {
			t.Fatalf("id %q", m.ID)
		}
		if !utf8.ValidString(m.Username) {
			t.Fatalf("username %q is not UTF-8", m.Username)
		}
		if m.CreatedAt.Location() != time.UTC || !m.CreatedAt.Equal(m.CreatedAt.Truncate(time.Millisecond)) {
			t.Fatalf("createdAt %v is not UTC in whole milliseconds", m.CreatedAt)
		}
		if flags&(fuzzID|fuzzDuplicate) == 0 && (m.ID != OriginalID(r.Topic, r.Partition, r.Offset) || m.Username != "") {
			t.Fatalf("a record in the original format decoded as %+v", m)
		}

		// Encode the message again, as the producer does, and decode that.
		p := newRecord(r.Topic, m)
		again := &sarama.ConsumerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: p.Timestamp}
		again.Key, _ = p.Key.Encode()
		again.Value, _ = p.Value.Encode()
		for _, h := range p.Headers {
			again.Headers = append(again.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
		m2, err := decode(again)
		if err != nil {
			t.Fatalf("the record newRecord made of %+v does not decode: %v", m, err)
		}
		if m2.ID != m.ID || m2.Text != m.Text || m2.Username != m.Username || !m2.CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("round trip: %+v became %+v", m, m2)
		}
	})
}

// checkDeadLetter fails when the dead letter of r does not carry r's key,
// value and headers as they were, then a reason (at most 1000 bytes of
// UTF-8) and the source.
func checkDeadLetter(t *testing.T, r *sarama.ConsumerMessage, reason string) {
	t.Helper()
	d := dlqRecord("MESSAGES.DLQ", r, reason)
	encoded := func(e sarama.Encoder) []byte {
		if e == nil {
			return nil
		}
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if k := encoded(d.Key); !bytes.Equal(k, r.Key) || (k == nil) != (r.Key == nil) {
		t.Fatalf("dead letter key %q, want %q", k, r.Key)
	}
	if v := encoded(d.Value); !bytes.Equal(v, r.Value) || (v == nil) != (r.Value == nil) {
		t.Fatalf("dead letter value %q, want %q", v, r.Value)
	}
	var kept []*sarama.RecordHeader
	for _, h := range r.Headers {
		if h != nil {
			kept = append(kept, h)
		}
	}
	if len(d.Headers) != len(kept)+2 {
		t.Fatalf("dead letter headers %v for %v", d.Headers, r.Headers)
	}
	for i, h := range kept {
		if !bytes.Equal(d.Headers[i].Key, h.Key) || !bytes.Equal(d.Headers[i].Value, h.Value) {
			t.Fatalf("dead letter header %d is %q=%q, want %q=%q", i, d.Headers[i].Key, d.Headers[i].Value, h.Key, h.Value)
		}
	}
	why := d.Headers[len(kept)]
	if string(why.Key) != HeaderDLQReason || len(why.Value) == 0 || len(why.Value) > 1000 || !utf8.Valid(why.Value) {
		t.Fatalf("dead letter reason %q=%q", why.Key, why.Value)
	}
	if string(d.Headers[len(kept)+1].Key) != HeaderDLQSource {
		t.Fatalf("dead letter source header %q", d.Headers[len(kept)+1].Key)
	}
}
