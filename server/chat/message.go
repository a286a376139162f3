package chat

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Message is one accepted chat message.
type Message struct {
	// ID identifies the message: a UUIDv7 assigned on accept (so ids sort by
	// time), or the sender's clientId, so that a retried emit is broadcast
	// and stored once.
	ID string
	// Text is the message text ("message" on the wire, "content" in the
	// store).
	Text string
	// Username is the sender's name as given, trimmed and cleaned; it may be
	// empty, as with the original server.
	Username string
	// CreatedAt is the accepting node's UTC time, in whole milliseconds.
	CreatedAt time.Time
	// UserID is the verified sender's user id (its token's sub), "" for an
	// anonymous sender; with it, Username is the token's name.
	UserID string
	// Room is the id of the room it was sent in; "" for the global room
	// (the original's only one: a NULL room_id in the store). RoomOf
	// gives the hub's name of either.
	Room string
}

// TimeLayout formats CreatedAt on the wire: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Wire is a message as clients receive it in a `message` event. The first
// two fields are exactly the original server's; its clients ignore the rest.
type Wire struct {
	Message   string `json:"message"`
	Username  string `json:"username"`
	ID        string `json:"id"`
	CreatedAt string `json:"createdAt"`
	// UserID and Verified: a verified sender's id and true; with
	// authentication on, an anonymous message says verified: false; with
	// it off, neither field is sent (the original's payload).
	UserID   string `json:"userId,omitempty"`
	Verified *bool  `json:"verified,omitempty"`
	// Room is the message's room, left out for the global room.
	Room string `json:"room,omitempty"`
}

var verifiedTrue, verifiedFalse = true, false

// Wire returns m as clients receive it: with userId and verified: true
// when its sender was verified.
func (m Message) Wire() Wire {
	w := Wire{
		Message:   m.Text,
		Username:  m.Username,
		ID:        m.ID,
		CreatedAt: m.CreatedAt.UTC().Format(TimeLayout),
		Room:      m.Room,
	}
	if m.UserID != "" {
		w.UserID, w.Verified = m.UserID, &verifiedTrue
	}
	return w
}

// WireFor returns m as clients of a server in mode receive it: with
// authentication on, an anonymous message says verified: false.
func (m Message) WireFor(mode AuthMode) Wire {
	w := m.Wire()
	if w.Verified == nil && mode != AuthOff && mode != "" {
		w.Verified = &verifiedFalse
	}
	return w
}

// Before reports whether m sorts before o in history order: by CreatedAt,
// then by ID.
func (m Message) Before(o Message) bool {
	if !m.CreatedAt.Equal(o.CreatedAt) {
		return m.CreatedAt.Before(o.CreatedAt)
	}
	return m.ID < o.ID
}

// Limits are the bounds a message must keep. Every limit is a named setting.
type Limits struct {
	// MaxMessageLength is the most Unicode code points a message may have
	// (MAX_MESSAGE_LENGTH, default 2000).
	MaxMessageLength int
	// MaxUsernameLength is the most Unicode code points a username may have
	// (MAX_USERNAME_LENGTH, default 64).
	MaxUsernameLength int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{MaxMessageLength: 2000, MaxUsernameLength: 64}
}

// Draft is a validated client event, before it is given an id and a time.
type Draft struct {
	Text     string
	Username string
	// ClientID is the sender's own id for the message (a UUID), or "".
	ClientID string
	// Room is the room the message is for: "" for the global room (the
	// payload's room absent, or "global"), else the room's id. Whether the
	// sender may talk there is the edge's to check.
	Room string
}

// ParseDraft validates the payload of an `event:message` event, as decoded
// from JSON, against the limits. Control characters and NUL are removed from
// the message and the username, and both are trimmed; the username also
// loses every invisible character (see clean). A message with nothing
// visible left is empty (CodeMessageEmpty). The error is an *Error whose
// Code tells the client what to fix.
func ParseDraft(payload any, l Limits) (Draft, error) {
	obj, ok := payload.(map[string]any)
	if !ok {
		return Draft{}, Errorf(CodeInvalidPayload, "the payload must be an object {message, username}")
	}
	rawText, present := obj["message"]
	if !present {
		return Draft{}, Errorf(CodeInvalidPayload, "message is missing")
	}
	text, ok := rawText.(string)
	if !ok {
		return Draft{}, Errorf(CodeInvalidPayload, "message must be a string")
	}
	var username string
	if rawUser, present := obj["username"]; present && rawUser != nil {
		if username, ok = rawUser.(string); !ok {
			return Draft{}, Errorf(CodeInvalidPayload, "username must be a string")
		}
	}
	text = clean(text, false)
	if !visible(text) {
		return Draft{}, Errorf(CodeMessageEmpty, "message is empty")
	}
	if n := utf8.RuneCountInString(text); n > l.MaxMessageLength {
		return Draft{}, Errorf(CodeMessageTooLong, "message is %d characters long; the limit is %d", n, l.MaxMessageLength)
	}
	username = clean(username, true)
	if n := utf8.RuneCountInString(username); n > l.MaxUsernameLength {
		return Draft{}, Errorf(CodeUsernameTooLong, "username is %d characters long; the limit is %d", n, l.MaxUsernameLength)
	}
	d := Draft{Text: text, Username: username}
	if rawRoom, present := obj["room"]; present && rawRoom != nil {
		room, ok := rawRoom.(string)
		if !ok || len(room) > 64 {
			return Draft{}, Errorf(CodeInvalidPayload, "room must be a room id")
		}
		if room != GlobalRoom {
			d.Room = room
		}
	}
	if rawID, present := obj["clientId"]; present && rawID != nil {
		s, ok := rawID.(string)
		if !ok {
			return Draft{}, Errorf(CodeInvalidClientID, "clientId must be a UUID string")
		}
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return Draft{}, Errorf(CodeInvalidClientID, "clientId must be a UUID like 0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f")
		}
		d.ClientID = id.String()
	}
	return d, nil
}

// clean removes control characters (NUL included) and invalid UTF-8 and
// trims surrounding white space. Line feeds and tabs inside a message stay.
//
// A username (name) also loses every default-ignorable code point (see
// ignorable): format characters such as zero-width spaces and joiners and
// bidi controls would let "ad\u200bmin" pass for "admin". A message keeps
// them: they carry meaning there (U+200D joins emoji sequences such as a
// family, tags make subdivision flags, U+200F orders right-to-left text,
// U+00AD marks where a word may break), and the web client shows each
// message's text as a paragraph of its own, where a bidi control's effect
// ends. Emoji sequences in a username show as their parts.
func clean(s string, name bool) string {
	drop := func(r rune, size int) bool {
		switch {
		case r == utf8.RuneError && size == 1:
			return true
		case !name && (r == '\n' || r == '\t'):
			return false
		case unicode.IsControl(r):
			return true
		}
		return name && (ignorable(r) || blank(r))
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if drop(r, size) {
			var b strings.Builder
			b.Grow(len(s))
			b.WriteString(s[:i])
			for j := i; j < len(s); {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !drop(r, size) {
					b.WriteString(s[j : j+size])
				}
				j += size
			}
			s = b.String()
			break
		}
		i += size
	}
	return strings.TrimSpace(s)
}

// ignorable reports whether r is one of Unicode's default-ignorable code
// points, which render as nothing: format characters (category Cf: zero
// width spaces and joiners, bidi controls, the soft hyphen, tags),
// variation selectors, and the other default-ignorables (the Hangul
// fillers, the combining grapheme joiner...).
func ignorable(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// blank reports whether r is a blank look-alike: a code point that is
// neither white space nor ignorable, yet shows as nothing in the usual
// fonts: U+2800 BRAILLE PATTERN BLANK (an empty cell, the favourite of
// blank messages and padded names), U+1D159 MUSICAL SYMBOL NULL NOTEHEAD
// and U+16FE4 KHITAN SMALL SCRIPT FILLER.
func blank(r rune) bool {
	return r == '\u2800' || r == '\U0001D159' || r == '\U00016FE4'
}

// visible reports whether s has a code point that shows: one that is
// neither white space, nor ignorable, nor blank.
func visible(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !ignorable(r) && !blank(r) {
			return true
		}
	}
	return false
}
