package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Claims is the cluster's memory of the client ids its nodes admitted, so
// that a retry is known for one on every node, after a crash too.
//
// Claim records c under c.ID unless the id is claimed already: then it
// returns the earlier claim, and fresh is false. A claim lives as long as
// the engine keeps it (a TTL); an error means the memory could not be
// reached, and the caller goes on with what its node remembers itself.
//
// Release forgets c when it is still the claim of its id: the message was
// refused (ErrUnavailable) and nobody saw it, so the id is free again.
type Claims interface {
	Claim(ctx context.Context, c Claim) (first Claim, fresh bool, err error)
	Release(ctx context.Context, c Claim) error
}

// Claim is what the cluster remembers of an admitted message: enough to
// tell a retry from another message under the same id, and to give a
// retry the first outcome.
type Claim struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	// UserID is the verified sender's user id, "" for an anonymous one;
	// Username is the name the message carries.
	UserID   string `json:"userId,omitempty"`
	Username string `json:"username"`
	// Sum is a digest of the text and the room (ClaimOf).
	Sum string `json:"sum"`
}

// ClaimOf returns the claim of m. Its digest is the same on every node.
func ClaimOf(m Message) Claim {
	h := sha256.New()
	h.Write([]byte(m.Text))
	h.Write([]byte{0}) // ParseDraft leaves no NUL in a text or a room
	h.Write([]byte(m.Room))
	return Claim{ID: m.ID, CreatedAt: m.CreatedAt, UserID: m.UserID, Username: m.Username,
		Sum: hex.EncodeToString(h.Sum(nil)[:16])}
}

// Retries reports whether a message claimed as c is a retry of the one
// first claimed: the same text in the same room, from the same verified
// user, or, from an anonymous sender, under the same username. A retry is
// neither admitted nor broadcast again; any other message under a claimed
// id is refused with CodeClientIDTaken.
func (c Claim) Retries(first Claim) bool {
	if c.Sum != first.Sum || c.UserID != first.UserID {
		return false
	}
	return c.UserID != "" || c.Username == first.Username
}
