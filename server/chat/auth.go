package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// Identity.
//
// A client is who a token signed by one of the server's keys says it is: a
// User. The edge verifies tokens (a Verifier); the domain only ever sees
// the User that came out, and decides from it: a verified sender's
// messages carry its name and id, whatever the payload says, and a user
// whose roles name a moderator may delete messages and ban.

// User is a verified identity.
type User struct {
	// ID is the token's subject (sub): stable, unique per issuer.
	ID string
	// Name is the display name: the token's name claim, else
	// preferred_username, else sub; cleaned like a username.
	Name string
	// Roles are the token's roles claim.
	Roles []string
	// ExpiresAt is when the token expires: the edge disconnects the socket
	// then (the client reconnects with a fresh token).
	ExpiresAt time.Time
	// Guest: the server's own guest sign-in issued the token.
	Guest bool
}

// Roles that may moderate: delete any message, ban and lift bans.
const (
	RoleModerator = "moderator"
	RoleAdmin     = "admin"
)

// IsModerator reports whether u may moderate (a nil User may not).
func (u *User) IsModerator() bool {
	return u != nil && (slices.Contains(u.Roles, RoleModerator) || slices.Contains(u.Roles, RoleAdmin))
}

// Sender returns u as the sender of a message on connection connID; a nil
// User is an anonymous sender.
func (u *User) Sender(connID string) Sender {
	if u == nil {
		return Sender{ConnID: connID}
	}
	return Sender{ConnID: connID, UserID: u.ID, Name: u.Name}
}

type userKey struct{}

// NewContextWithUser returns a copy of ctx that carries u (an HTTP
// request's verified caller, say).
func NewContextWithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFromContext returns the User ctx carries, or nil.
func UserFromContext(ctx context.Context) *User {
	u, _ := ctx.Value(userKey{}).(*User)
	return u
}

// Verifier checks a bearer token and returns who it names. The error
// wraps ErrUnauthorized for a token that is not valid (badly formed,
// signed by no key of the server, expired, for another issuer or
// audience); any other error is a fault of the verifier (a key set that
// cannot be fetched).
type Verifier interface {
	Verify(ctx context.Context, token string) (*User, error)
}

// ErrUnauthorized is wrapped by every refusal of a token.
var ErrUnauthorized = errors.New("unauthorized")

// AuthMode says what the edge asks of clients (AUTH_MODE).
type AuthMode string

// The modes.
const (
	// AuthOff: no token is read; usernames are free text, as the original.
	AuthOff AuthMode = "off"
	// AuthOptional: a valid token makes a verified user; a client without
	// one still chats, its messages marked verified: false; an invalid or
	// expired token is refused.
	AuthOptional AuthMode = "optional"
	// AuthRequired: a CONNECT without a valid token is refused.
	AuthRequired AuthMode = "required"
)

// NameClaims holds the names of guest sign-ins, cluster-wide: a name is
// one guest session's until its token expires.
//
// Claim takes name for holder until until, and reports true; it reports
// false when another holder has the name now. The same holder claiming
// again (a renewal) moves its end. Names compare without regard to case.
type NameClaims interface {
	Claim(ctx context.Context, name, holder string, until time.Time) (bool, error)
}

// LocalNameClaims is the NameClaims of a node that runs alone.
type LocalNameClaims struct {
	mu     sync.Mutex
	claims map[string]nameClaim
	now    func() time.Time
}

type nameClaim struct {
	holder string
	until  time.Time
}

// Claim implements NameClaims.
func (l *LocalNameClaims) Claim(_ context.Context, name, holder string, until time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	if l.claims == nil {
		l.claims = map[string]nameClaim{}
	}
	key := FoldName(name)
	if c, ok := l.claims[key]; ok && c.holder != holder && now.Before(c.until) {
		return false, nil
	}
	l.claims[key] = nameClaim{holder: holder, until: until}
	if len(l.claims) > 1024 && len(l.claims)%1024 == 0 {
		for k, c := range l.claims {
			if !now.Before(c.until) {
				delete(l.claims, k)
			}
		}
	}
	return true, nil
}

// FoldName is the form in which names are compared: lower case.
func FoldName(name string) string { return strings.ToLower(name) }
