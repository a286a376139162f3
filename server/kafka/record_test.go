package kafka

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
)

func hdr(kv ...string) []*sarama.RecordHeader {
	var out []*sarama.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &sarama.RecordHeader{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return out
}

func TestDecode(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	origID := OriginalID("MESSAGES", 2, 41)
	tests := []struct {
		name    string
		rec     sarama.ConsumerMessage
		want    chat.Message
		wantErr string
	}{
		{
			name: "go server record",
			rec: sarama.ConsumerMessage{Key: []byte("id-1"), Value: []byte("héllo 👋"),
				Headers: hdr("id", "id-1", "username", "Zoë", "created-at", "2026-03-04T05:06:07.891Z")},
			want: chat.Message{ID: "id-1", Text: "héllo 👋", Username: "Zoë", CreatedAt: ts},
		},
		{
			name: "created-at with an offset is kept as UTC",
			rec: sarama.ConsumerMessage{Value: []byte("x"),
				Headers: hdr("id", "id-2", "username", "", "created-at", "2026-03-04T07:06:07.891+02:00")},
			want: chat.Message{ID: "id-2", Text: "x", CreatedAt: ts},
		},
		{
			name: "original record: key message-<ms>, no headers",
			rec: sarama.ConsumerMessage{Topic: "MESSAGES", Partition: 2, Offset: 41,
				Key: []byte("message-1772600767891"), Value: []byte("hi from node"), Timestamp: ts.Add(time.Hour)},
			want: chat.Message{ID: origID, Text: "hi from node", Username: "", CreatedAt: time.UnixMilli(1772600767891).UTC()},
		},
		{
			name: "original record with an odd key takes the record time",
			rec: sarama.ConsumerMessage{Topic: "MESSAGES", Partition: 2, Offset: 41,
				Key: []byte("message-soon"), Value: []byte("x"), Timestamp: ts.Add(123 * time.Microsecond)},
			want: chat.Message{ID: origID, Text: "x", CreatedAt: ts},
		},
		{
			name: "a NUL byte decodes (the database refuses it)",
			rec:  sarama.ConsumerMessage{Topic: "MESSAGES", Partition: 2, Offset: 41, Key: []byte("message-1772600767891"), Value: []byte("a\x00b")},
			want: chat.Message{ID: origID, Text: "a\x00b", CreatedAt: time.UnixMilli(1772600767891).UTC()},
		},
		{name: "tombstone", rec: sarama.ConsumerMessage{Key: []byte("k")}, wantErr: "no value"},
		{name: "invalid UTF-8 value", rec: sarama.ConsumerMessage{Value: []byte{0xff, 0xfe}}, wantErr: "not valid UTF-8"},
		{name: "empty id", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "", "created-at", "2026-03-04T05:06:07.891Z")}, wantErr: `"id" header is empty`},
		{name: "long id", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", strings.Repeat("a", 129), "created-at", "2026-03-04T05:06:07.891Z")}, wantErr: "limit is 128"},
		{name: "username not UTF-8", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "a", "username", "\xff", "created-at", "2026-03-04T05:06:07.891Z")}, wantErr: `"username" header is not valid UTF-8`},
		{name: "no created-at", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "a")}, wantErr: `"created-at" header is missing`},
		{name: "bad created-at", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "a", "created-at", "yesterday")}, wantErr: "not an RFC 3339 time"},
		{name: "created-at past the year 9999 in UTC", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "a", "created-at", "9999-12-31T23:59:59-01:00")}, wantErr: "outside the years 0001 to 9999"},
		{name: "created-at before the year 0001 in UTC", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("id", "a", "created-at", "0001-01-01T00:00:00+00:01")}, wantErr: "outside the years 0001 to 9999"},
		{name: "headers without id", rec: sarama.ConsumerMessage{Value: []byte("x"), Headers: hdr("username", "bob")}, wantErr: `no "id" header`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(&tc.rec)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errUndecodable) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decode = %+v, %v; want an undecodable error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.want.ID || got.Text != tc.want.Text || got.Username != tc.want.Username || !got.CreatedAt.Equal(tc.want.CreatedAt) {
				t.Fatalf("decode =\n %+v\nwant\n %+v", got, tc.want)
			}
			if got.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	m := chat.Message{ID: "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f", Text: "line\nnext ✓", Username: "Ann",
		CreatedAt: time.Date(2026, 11, 27, 13, 14, 15, 123_000_000, time.UTC)}
	p := newRecord("MESSAGES", m)
	key, _ := p.Key.Encode()
	val, _ := p.Value.Encode()
	if string(key) != m.ID || string(val) != m.Text {
		t.Fatalf("key %q value %q", key, val)
	}
	want := map[string]string{"id": m.ID, "username": "Ann", "created-at": "2026-11-27T13:14:15.123Z"}
	if len(p.Headers) != len(want) {
		t.Fatalf("headers %v", p.Headers)
	}
	c := &sarama.ConsumerMessage{Key: key, Value: val}
	for _, h := range p.Headers {
		if want[string(h.Key)] != string(h.Value) {
			t.Errorf("header %s = %q, want %q", h.Key, h.Value, want[string(h.Key)])
		}
		c.Headers = append(c.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	got, err := decode(c)
	if err != nil || got != m {
		t.Fatalf("decode(newRecord(m)) = %+v, %v; want %+v", got, err, m)
	}
}

func TestOriginalIDIsAStableUUIDv5(t *testing.T) {
	a := OriginalID("MESSAGES", 0, 7)
	if a != OriginalID("MESSAGES", 0, 7) {
		t.Fatal("not deterministic")
	}
	u, err := uuid.Parse(a)
	if err != nil || u.Version() != 5 {
		t.Fatalf("%s: version %v, err %v", a, u.Version(), err)
	}
	for _, other := range []string{OriginalID("MESSAGES", 0, 8), OriginalID("MESSAGES", 1, 7), OriginalID("OTHER", 0, 7)} {
		if other == a {
			t.Fatalf("collision: %s", a)
		}
	}
	// Pinned (computed independently with Python's uuid.uuid5), so that
	// the ids of rows stored from original records never change.
	if a != "8da38f96-5fb4-56ce-9aad-b06fcc01113e" {
		t.Fatalf("OriginalID(MESSAGES, 0, 7) = %s, want 8da38f96-5fb4-56ce-9aad-b06fcc01113e", a)
	}
}

func TestDLQRecordKeepsTheRecordAndAddsTheReason(t *testing.T) {
	r := &sarama.ConsumerMessage{Topic: "MESSAGES", Partition: 3, Offset: 99, Key: []byte("message-1"), Value: []byte("a\x00b"),
		Headers: hdr("x", "y")}
	d := dlqRecord("MESSAGES.DLQ", r, "the store refused it: invalid byte sequence")
	key, _ := d.Key.Encode()
	val, _ := d.Value.Encode()
	if d.Topic != "MESSAGES.DLQ" || string(key) != "message-1" || string(val) != "a\x00b" {
		t.Fatalf("dlq record %+v", d)
	}
	got := map[string]string{}
	for _, h := range d.Headers {
		got[string(h.Key)] = string(h.Value)
	}
	if got["x"] != "y" || got[HeaderDLQReason] != "the store refused it: invalid byte sequence" || got[HeaderDLQSource] != "MESSAGES/3/99" {
		t.Fatalf("headers %v", got)
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	if got := truncate("aé", 2); got != "a" {
		t.Fatalf("truncate = %q", got)
	}
	if got := truncate("abc", 5); got != "abc" {
		t.Fatalf("truncate = %q", got)
	}
}

func TestValidTopic(t *testing.T) {
	for name, want := range map[string]bool{"MESSAGES": true, "MESSAGES.DLQ": true, "a-b_c": true, "": false, "a b": false,
		"..": false, strings.Repeat("a", 250): false} {
		if ValidTopic(name) != want {
			t.Errorf("ValidTopic(%q) = %v", name, !want)
		}
	}
}
