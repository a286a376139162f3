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
	// GuestSince is when a guest's session began: its first sign-in
	// (renewals keep it). Zero for others.
	GuestSince time.Time
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
// Claim takes c.Name for c.Holder until c.Until. The same holder claiming
// again (a renewal) moves its end. Names compare without regard to case
// (FoldName). It returns ErrNameTaken when another holder has the name
// now, and ErrNamesPerAddress when c.Addr holds c.PerAddr names already
// (a name the address holds already does not count again).
//
// Holder returns who holds name now, "" when no one does.
type NameClaims interface {
	Claim(ctx context.Context, c NameClaim) error
	Holder(ctx context.Context, name string) (string, error)
}

// NameClaim is a guest's request for a name.
type NameClaim struct {
	Name, Holder string
	Until        time.Time
	// Addr is the client address that asks (ClientKey), and PerAddr the
	// most names one address may hold at once (0: no limit), so that one
	// address cannot squat names by the thousand.
	Addr    string
	PerAddr int
}

// Refusals of a name claim.
var (
	ErrNameTaken       = &Error{Code: CodeNameTaken, Reason: "another guest uses this name now; choose another"}
	ErrNamesPerAddress = &Error{Code: CodeTooManyNames, Reason: "your address holds as many guest names as it may; one frees when its session ends"}
)

// Codes of name claims.
const (
	// CodeNameTaken: the name is another live guest's (or, for an
	// anonymous client of AUTH_MODE=optional, a verified user's).
	CodeNameTaken = "name_taken"
	// CodeTooManyNames: the client's address holds as many guest names as
	// it may (AUTH_GUEST_NAMES_PER_IP).
	CodeTooManyNames = "too_many_names"
)

// LocalNameClaims is the NameClaims of a node that runs alone.
type LocalNameClaims struct {
	mu     sync.Mutex
	claims map[string]nameClaim
	// byAddr counts the names each address holds; entries of ended
	// claims are dropped when the address claims again, or in the sweep.
	byAddr map[string]map[string]time.Time
	now    func() time.Time
}

type nameClaim struct {
	holder string
	until  time.Time
}

// Claim implements NameClaims.
func (l *LocalNameClaims) Claim(_ context.Context, c NameClaim) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	if l.claims == nil {
		l.claims, l.byAddr = map[string]nameClaim{}, map[string]map[string]time.Time{}
	}
	key := FoldName(c.Name)
	if old, ok := l.claims[key]; ok && old.holder != c.Holder && now.Before(old.until) {
		return ErrNameTaken
	}
	if c.Addr != "" {
		held := l.byAddr[c.Addr]
		for k, until := range held {
			if !now.Before(until) {
				delete(held, k)
			}
		}
		if _, again := held[key]; !again && c.PerAddr > 0 && len(held) >= c.PerAddr {
			return ErrNamesPerAddress
		}
		if held == nil {
			held = map[string]time.Time{}
			l.byAddr[c.Addr] = held
		}
		held[key] = c.Until
	}
	l.claims[key] = nameClaim{holder: c.Holder, until: c.Until}
	if len(l.claims) > 1024 && len(l.claims)%1024 == 0 {
		l.sweep(now)
	}
	return nil
}

// Holder implements NameClaims.
func (l *LocalNameClaims) Holder(_ context.Context, name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.claims[FoldName(name)]; ok && l.clock().Before(c.until) {
		return c.holder, nil
	}
	return "", nil
}

func (l *LocalNameClaims) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// sweep drops the ended claims; l.mu is held.
func (l *LocalNameClaims) sweep(now time.Time) {
	for k, c := range l.claims {
		if !now.Before(c.until) {
			delete(l.claims, k)
		}
	}
	for addr, held := range l.byAddr {
		for k, until := range held {
			if !now.Before(until) {
				delete(held, k)
			}
		}
		if len(held) == 0 {
			delete(l.byAddr, addr)
		}
	}
}

// FoldName is the form in which names are compared: lower case.
func FoldName(name string) string { return strings.ToLower(name) }
