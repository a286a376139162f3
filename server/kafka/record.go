package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/scalable-chat-go/server/chat"
)

// Record headers. A record the Go server produced carries all three; a
// record the original Node.js server produced carries none.
const (
	HeaderID        = "id"
	HeaderUsername  = "username"
	HeaderCreatedAt = "created-at"

	// HeaderUserID is a verified sender's user id (absent for anonymous
	// senders and in records of an earlier version).
	HeaderUserID = "user-id"

	// HeaderEvent marks a record that is not a message of the global
	// room: its value is "message-deleted" for a deletion (see
	// deletionRecord), "room-message" for a message of another room. A
	// record without it is a message of the global room.
	HeaderEvent = "chat-event"
	// EventRoomMessage is HeaderEvent's value on the record of a message
	// of a room other than the global one; the header HeaderRoom names
	// the room. Versions before rooms do not know it, so their consumers
	// send such a record to the dead-letter topic rather than store a
	// room's message as one of the global room: upgrade the consumers
	// first.
	EventRoomMessage = "room-message"
	HeaderRoom       = "room"
	// EventDeleted is HeaderEvent's value on a deletion's record; the
	// headers HeaderDeletedBy and HeaderDeletedAt say who and when.
	EventDeleted    = "message-deleted"
	HeaderDeletedBy = "deleted-by"
	HeaderDeletedAt = "deleted-at"

	// HeaderDLQReason says why a record was sent to the dead-letter topic;
	// HeaderDLQSource says where it came from (topic/partition/offset).
	HeaderDLQReason = "dlq-reason"
	HeaderDLQSource = "dlq-source"
)

// maxIDLength bounds the id header: ids are UUIDs (36 characters); anything
// much longer is not one of ours.
const maxIDLength = 128

// minTime and maxTime bound the time of a record: the times RFC 3339 writes
// in UTC with a four-digit year (0001 to 9999), which every reader of
// createdAt parses and both stores keep. A later or earlier time would be
// stored, then sent to clients as a createdAt no one can read.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

func inTimeRange(t time.Time) bool { return !t.Before(minTime) && !t.After(maxTime) }

// originalIDSpace is the UUIDv5 name space of the ids given to records in
// the original format (see OriginalID).
var originalIDSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/scalable-chat-go/kafka-record"))

// OriginalID is the id stored for a record without an id header (the
// original server's format): a UUIDv5 of "topic/partition/offset" in the
// name space UUIDv5(URL, "https://github.com/scalable-chat-go/kafka-record").
// The same record always gets the same id, so a re-delivery stores nothing
// twice.
func OriginalID(topic string, partition int32, offset int64) string {
	return uuid.NewSHA1(originalIDSpace, []byte(topic+"/"+strconv.Itoa(int(partition))+"/"+strconv.FormatInt(offset, 10))).String()
}

// newRecord returns the record of m: key = id, value = the text in UTF-8
// (what the original's consumer reads), headers id, username, created-at
// (and user-id for a verified sender); a message of a room other than the
// global one also has chat-event: room-message and room.
func newRecord(topic string, m chat.Message) *sarama.ProducerMessage {
	r := &sarama.ProducerMessage{
		Topic: topic,
		Key:   sarama.StringEncoder(m.ID),
		Value: sarama.StringEncoder(m.Text),
		Headers: []sarama.RecordHeader{
			{Key: []byte(HeaderID), Value: []byte(m.ID)},
			{Key: []byte(HeaderUsername), Value: []byte(m.Username)},
			{Key: []byte(HeaderCreatedAt), Value: []byte(m.CreatedAt.UTC().Format(chat.TimeLayout))},
		},
		Timestamp: m.CreatedAt,
	}
	if m.UserID != "" {
		r.Headers = append(r.Headers, sarama.RecordHeader{Key: []byte(HeaderUserID), Value: []byte(m.UserID)})
	}
	if m.Room != "" {
		r.Headers = append(r.Headers,
			sarama.RecordHeader{Key: []byte(HeaderEvent), Value: []byte(EventRoomMessage)},
			sarama.RecordHeader{Key: []byte(HeaderRoom), Value: []byte(m.Room)})
	}
	return r
}

// deletionRecord returns the record of a tombstone: key = the deleted
// message's id (so it lands on the message's partition, after it), value
// empty (not null: a consumer that reads only values, as the original's
// did, gets an empty text rather than a crash), and headers chat-event:
// message-deleted, id, deleted-by, deleted-at. The consumer stores the
// tombstone; it hides the message even when it is stored first.
func deletionRecord(topic string, d chat.Deletion) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic: topic,
		Key:   sarama.StringEncoder(d.ID),
		Value: sarama.StringEncoder(""),
		Headers: []sarama.RecordHeader{
			{Key: []byte(HeaderEvent), Value: []byte(EventDeleted)},
			{Key: []byte(HeaderID), Value: []byte(d.ID)},
			{Key: []byte(HeaderDeletedBy), Value: []byte(d.By)},
			{Key: []byte(HeaderDeletedAt), Value: []byte(d.At.UTC().Format(chat.TimeLayout))},
		},
		Timestamp: d.At,
	}
}

// decodeRecord turns a consumed record into a message, or into a
// tombstone (del not nil) when its chat-event header says so. A message of
// a room other than the global one has chat-event room-message and a room
// header; a room header on any other record is undecodable, as is a
// chat-event of another value: a later version's event this node does not
// know goes to the dead-letter topic rather than being stored as a
// message of the global room.
func decodeRecord(r *sarama.ConsumerMessage) (m chat.Message, del *chat.Deletion, err error) {
	var event, room []byte
	hasEvent, hasRoom, hasID := false, false, false
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		switch string(h.Key) {
		case HeaderEvent:
			event, hasEvent = h.Value, true
		case HeaderRoom:
			room, hasRoom = h.Value, true
		case HeaderID:
			hasID = true
		}
	}
	switch {
	case !hasEvent && hasRoom:
		return chat.Message{}, nil, fmt.Errorf("%w: a %q header on a record without %q %q", errUndecodable, HeaderRoom, HeaderEvent, EventRoomMessage)
	case !hasEvent:
		m, err = decode(r)
		return m, nil, err
	case string(event) == EventRoomMessage:
		switch {
		case !hasID:
			return chat.Message{}, nil, fmt.Errorf("%w: a room's message without an %q header", errUndecodable, HeaderID)
		case len(room) == 0:
			return chat.Message{}, nil, fmt.Errorf("%w: a room's message without a %q header", errUndecodable, HeaderRoom)
		case len(room) > maxIDLength || !utf8.Valid(room):
			return chat.Message{}, nil, fmt.Errorf("%w: the %q header is not a room id (valid UTF-8, at most %d bytes)", errUndecodable, HeaderRoom, maxIDLength)
		}
		if m, err = decode(r); err != nil {
			return chat.Message{}, nil, err
		}
		m.Room = string(room)
		return m, nil, nil
	case string(event) != EventDeleted:
		return chat.Message{}, nil, fmt.Errorf("%w: unknown %q header %q", errUndecodable, HeaderEvent, truncate(string(event), 64))
	case hasRoom:
		return chat.Message{}, nil, fmt.Errorf("%w: a %q header on a deletion (a deletion's room is its message's)", errUndecodable, HeaderRoom)
	}
	d, err := decodeDeletion(r)
	if err != nil {
		return chat.Message{}, nil, err
	}
	return chat.Message{}, &d, nil
}

func decodeDeletion(r *sarama.ConsumerMessage) (chat.Deletion, error) {
	var id, by, at []byte
	var hasID, hasAt bool
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		switch string(h.Key) {
		case HeaderID:
			id, hasID = h.Value, true
		case HeaderDeletedBy:
			by = h.Value
		case HeaderDeletedAt:
			at, hasAt = h.Value, true
		}
	}
	switch {
	case !hasID || len(id) == 0:
		return chat.Deletion{}, fmt.Errorf("%w: a deletion without an %q header", errUndecodable, HeaderID)
	case len(id) > maxIDLength:
		return chat.Deletion{}, fmt.Errorf("%w: the %q header is %d bytes long; the limit is %d", errUndecodable, HeaderID, len(id), maxIDLength)
	case !utf8.Valid(id) || !utf8.Valid(by):
		return chat.Deletion{}, fmt.Errorf("%w: a deletion's %q or %q header is not valid UTF-8", errUndecodable, HeaderID, HeaderDeletedBy)
	case !hasAt:
		return chat.Deletion{}, fmt.Errorf("%w: a deletion without a %q header", errUndecodable, HeaderDeletedAt)
	}
	t, err := headerTime(HeaderDeletedAt, at)
	if err != nil {
		return chat.Deletion{}, err
	}
	return chat.Deletion{ID: string(id), By: string(by), At: t}, nil
}

// errUndecodable is wrapped by every decode failure; its text is the
// reason written to the dead-letter topic.
var errUndecodable = errors.New("undecodable record")

// decode turns a consumed record into a message.
//
// A record with an id header is the Go server's: id, username and
// created-at come from its headers. A record without one is the original
// server's (key "message-<epoch ms>", value the text, no headers): it gets
// username "", the id OriginalID, and the time of its key (or, failing
// that, the record's timestamp).
//
// The value must be valid UTF-8. A NUL byte is valid UTF-8 and decodes; it
// is the database that refuses it.
func decode(r *sarama.ConsumerMessage) (chat.Message, error) {
	if r.Value == nil {
		return chat.Message{}, fmt.Errorf("%w: the record has no value (a tombstone)", errUndecodable)
	}
	if !utf8.Valid(r.Value) {
		return chat.Message{}, fmt.Errorf("%w: the value is not valid UTF-8", errUndecodable)
	}
	m := chat.Message{Text: string(r.Value)}
	var id, username, created, userID []byte
	var hasID, hasUser, hasCreated bool
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		switch string(h.Key) {
		case HeaderID:
			id, hasID = h.Value, true
		case HeaderUsername:
			username, hasUser = h.Value, true
		case HeaderCreatedAt:
			created, hasCreated = h.Value, true
		case HeaderUserID:
			userID = h.Value
		}
	}
	if !hasID {
		if hasUser || hasCreated {
			return chat.Message{}, fmt.Errorf("%w: it has %q or %q headers but no %q header", errUndecodable, HeaderUsername, HeaderCreatedAt, HeaderID)
		}
		m.ID = OriginalID(r.Topic, r.Partition, r.Offset)
		m.CreatedAt = originalTime(r)
		return m, nil
	}
	switch {
	case len(id) == 0:
		return chat.Message{}, fmt.Errorf("%w: the %q header is empty", errUndecodable, HeaderID)
	case len(id) > maxIDLength:
		return chat.Message{}, fmt.Errorf("%w: the %q header is %d bytes long; the limit is %d", errUndecodable, HeaderID, len(id), maxIDLength)
	case !utf8.Valid(id):
		return chat.Message{}, fmt.Errorf("%w: the %q header is not valid UTF-8", errUndecodable, HeaderID)
	case !utf8.Valid(username):
		return chat.Message{}, fmt.Errorf("%w: the %q header is not valid UTF-8", errUndecodable, HeaderUsername)
	case len(userID) > maxIDLength*2 || !utf8.Valid(userID):
		return chat.Message{}, fmt.Errorf("%w: the %q header is not a user id (valid UTF-8, at most %d bytes)", errUndecodable, HeaderUserID, maxIDLength*2)
	case !hasCreated:
		return chat.Message{}, fmt.Errorf("%w: the %q header is missing", errUndecodable, HeaderCreatedAt)
	}
	t, err := headerTime(HeaderCreatedAt, created)
	if err != nil {
		return chat.Message{}, err
	}
	m.ID = string(id)
	m.Username = string(username)
	m.UserID = string(userID)
	m.CreatedAt = t
	return m, nil
}

// originalTime is the time of a record in the original format: the epoch
// milliseconds of its key "message-<ms>", else the record's timestamp, else
// now; a key or timestamp past the year 9999 does not count.
func originalTime(r *sarama.ConsumerMessage) time.Time {
	if ms, ok := strings.CutPrefix(string(r.Key), "message-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil && n > 0 && n < 253402300800000 {
			return time.UnixMilli(n).UTC()
		}
	}
	if t := r.Timestamp.UTC().Truncate(time.Millisecond); !r.Timestamp.IsZero() && r.Timestamp.Unix() > 0 && inTimeRange(t) {
		return t
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

// dlqRecord returns the dead-letter record for r: its key, value and
// headers as they were, plus the reason and the source.
func dlqRecord(topic string, r *sarama.ConsumerMessage, reason string) *sarama.ProducerMessage {
	headers := make([]sarama.RecordHeader, 0, len(r.Headers)+2)
	for _, h := range r.Headers {
		if h != nil {
			headers = append(headers, *h)
		}
	}
	headers = append(headers,
		sarama.RecordHeader{Key: []byte(HeaderDLQReason), Value: []byte(truncate(reason, 1000))},
		sarama.RecordHeader{Key: []byte(HeaderDLQSource), Value: []byte(fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset))},
	)
	var key, value sarama.Encoder
	if r.Key != nil {
		key = sarama.ByteEncoder(r.Key)
	}
	if r.Value != nil {
		value = sarama.ByteEncoder(r.Value)
	}
	return &sarama.ProducerMessage{Topic: topic, Key: key, Value: value, Headers: headers, Timestamp: r.Timestamp}
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// headerTime reads the time in header name: RFC 3339, in UTC to the
// millisecond, within the years 0001 to 9999; else an undecodable error.
func headerTime(name string, v []byte) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: the %q header %q is not an RFC 3339 time", errUndecodable, name, truncate(string(v), 64))
	}
	t = t.UTC().Truncate(time.Millisecond)
	if !inTimeRange(t) {
		return time.Time{}, fmt.Errorf("%w: the %q header %q is outside the years 0001 to 9999 (UTC)", errUndecodable, name, truncate(string(v), 64))
	}
	return t, nil
}
