package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scalable-chat-go/server/chat"
)

// Trust: the endpoints of identity and moderation.
//
//	GET    /api/config          {auth: off|optional|required, guest: bool}: what the web client needs to know
//	POST   /api/session         {username} -> {token, expiresAt}: guest sign-in (AUTH_GUEST=on)
//	DELETE /api/messages/{id}   204; 404 for an unknown id (a moderator)
//	POST   /api/bans            {userId | username | ip, durationSec?, reason?} -> 201 the ban (a moderator)
//	GET    /api/bans            {bans: [...]}: the bans in force (a moderator)
//	DELETE /api/bans/{id}       204; 404 for no ban in force (a moderator)
//
// A moderator is the bearer of ADMIN_TOKEN, or of a token the Verifier
// accepts whose roles name moderator or admin: 401 without a valid bearer,
// 403 for one who is not a moderator.

// Guests signs the tokens of the guest sign-in (jwtauth.Verifier): for
// name, as id ("" for a new guest), for a session that began at since
// (zero: now), until until; exp is until as the token says it.
type Guests interface {
	SignGuest(name, id string, since, until, now time.Time) (token, sub string, exp time.Time, err error)
}

// TrustOptions configure the endpoints of identity and moderation; a nil
// Moderation serves none of the moderation endpoints.
type TrustOptions struct {
	// AuthMode and Verifier are the edge's (AUTH_MODE): GET /api/config
	// tells the mode; the Verifier also admits moderators' tokens.
	AuthMode chat.AuthMode
	Verifier chat.Verifier
	// AdminToken is the bearer token of the API's administrator
	// (ADMIN_TOKEN); "": none.
	AdminToken string
	Moderation *chat.Moderation
	// Guests, Names and GuestTTL serve POST /api/session (AUTH_GUEST=on,
	// AUTH_GUEST_TTL); nil Guests: no guest sign-in.
	Guests   Guests
	Names    chat.NameClaims
	GuestTTL time.Duration
	// GuestMaxLifetime is how long after its first sign-in a guest session
	// (its user id and its hold on its name) may be renewed; then the guest
	// signs in afresh (AUTH_GUEST_MAX_LIFETIME, default 24 h).
	GuestMaxLifetime time.Duration
	// GuestSignInsPerMinute and GuestNamesPerAddress bound, per client
	// address (chat.ClientKey), the sign-ins a minute (renewals count) and
	// the guest names held at once (AUTH_GUEST_SIGNINS_PER_MIN,
	// AUTH_GUEST_NAMES_PER_IP; 0: no limit).
	GuestSignInsPerMinute int
	GuestNamesPerAddress  int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Limits check a guest's name as a username.
	Limits chat.Limits
	Logger *slog.Logger
}

// AdminID is the user id moderation records for the bearer of ADMIN_TOKEN.
const AdminID = "admin-token"

func (a *API) registerTrust(mux *http.ServeMux) {
	t := a.o.Trust
	mux.Handle("GET /api/config", SecureHeaders(http.HandlerFunc(a.config)))
	mux.Handle("OPTIONS /api/config", SecureHeaders(http.HandlerFunc(a.config)))
	if t.Guests != nil {
		mux.Handle("POST /api/session", a.changes(a.session))
		mux.Handle("OPTIONS /api/session", SecureHeaders(http.HandlerFunc(a.session)))
	}
	if t.Moderation != nil {
		mux.Handle("DELETE /api/messages/{id}", a.changes(a.deleteMessage))
		mux.Handle("OPTIONS /api/messages/{id}", SecureHeaders(http.HandlerFunc(a.deleteMessage)))
		mux.Handle("POST /api/bans", a.changes(a.addBan))
		mux.Handle("GET /api/bans", SecureHeaders(http.HandlerFunc(a.listBans)))
		mux.Handle("OPTIONS /api/bans", SecureHeaders(http.HandlerFunc(a.listBans)))
		mux.Handle("DELETE /api/bans/{id}", a.changes(a.liftBan))
		mux.Handle("OPTIONS /api/bans/{id}", SecureHeaders(http.HandlerFunc(a.liftBan)))
	}
}

// changes serves an endpoint that changes state, for callers that are no
// other site's page: a browser's request from an Origin CORS_ORIGINS does
// not allow is refused (403; a request without Origin is no browser's
// cross-site request), and a body must be application/json (415), which a
// page elsewhere cannot send without a preflight that CORS_ORIGINS
// answers. A simple cross-site POST (text/plain, a form) is thus never
// processed: it would carry the visitor's address to a guest sign-in.
func (a *API) changes(next http.HandlerFunc) http.Handler {
	return SecureHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !a.o.AllowOrigin(o) {
			fail(w, http.StatusForbidden, chat.CodeForbidden, "requests from this page's origin are not allowed (CORS_ORIGINS)")
			return
		}
		if r.Method == http.MethodPost || r.ContentLength > 0 {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				fail(w, http.StatusUnsupportedMediaType, chat.CodeInvalidPayload, "send the body as Content-Type: application/json")
				return
			}
		}
		next(w, r)
	}))
}

// corsMethods lets the allowed browser origins call the endpoint with
// methods, and answers the preflight (true: the request is answered).
func (a *API) corsMethods(w http.ResponseWriter, r *http.Request, methods string) bool {
	if origin := r.Header.Get("Origin"); origin != "" && a.o.AllowOrigin(origin) {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", methods)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func fail(w http.ResponseWriter, status int, code, reason string) {
	writeJSON(w, status, map[string]any{"error": apiError{code, reason}})
}

func (a *API) config(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "GET") {
		return
	}
	t := a.o.Trust
	mode := t.AuthMode
	if mode == "" || t.Verifier == nil {
		mode = chat.AuthOff
	}
	writeJSON(w, http.StatusOK, map[string]any{"auth": mode, "guest": t.Guests != nil})
}

// bearerToken is the request's Authorization: Bearer token, or "".
func bearerToken(r *http.Request) string {
	scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(t)
}

// caller returns who the request's bearer is; it answers 401 itself (and
// returns nil) when there is no valid one.
func (a *API) caller(w http.ResponseWriter, r *http.Request) *chat.User {
	t := a.o.Trust
	token := bearerToken(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chat"`)
		fail(w, http.StatusUnauthorized, chat.CodeUnauthorized, "send Authorization: Bearer with ADMIN_TOKEN or a moderator's token")
		return nil
	}
	if t.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(t.AdminToken)) == 1 {
		return &chat.User{ID: AdminID, Name: "admin", Roles: []string{chat.RoleAdmin}}
	}
	if t.Verifier != nil {
		u, err := t.Verifier.Verify(r.Context(), token)
		if err == nil {
			return u
		}
		if !errors.Is(err, chat.ErrUnauthorized) {
			fail(w, http.StatusServiceUnavailable, chat.CodeUnavailable, "tokens cannot be verified right now")
			return nil
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="chat", error="invalid_token"`)
	fail(w, http.StatusUnauthorized, chat.CodeUnauthorized, "the bearer token is not valid")
	return nil
}

// moderator returns the caller when it is a moderator; it answers 401 or
// 403 itself otherwise.
func (a *API) moderator(w http.ResponseWriter, r *http.Request) *chat.User {
	u := a.caller(w, r)
	if u == nil {
		return nil
	}
	if !u.IsModerator() {
		fail(w, http.StatusForbidden, chat.CodeForbidden, chat.ErrForbidden.Reason)
		return nil
	}
	return u
}

// moderationError answers the error of a moderation action.
func moderationError(w http.ResponseWriter, err error) {
	var ce *chat.Error
	switch {
	case errors.Is(err, chat.ErrNotFound):
		fail(w, http.StatusNotFound, chat.CodeNotFound, "no message or ban has that id")
	case errors.As(err, &ce) && ce.Code == chat.CodeForbidden:
		fail(w, http.StatusForbidden, ce.Code, ce.Reason)
	case errors.As(err, &ce) && ce.Code == chat.CodeInvalidPayload:
		fail(w, http.StatusBadRequest, ce.Code, ce.Reason)
	case errors.Is(err, context.DeadlineExceeded):
		fail(w, http.StatusServiceUnavailable, chat.CodeUnavailable, "the action was taken but is not durable yet; it is retried")
	default:
		e := chat.CodeOf(err)
		fail(w, http.StatusServiceUnavailable, chat.CodeUnavailable, e.Reason)
	}
}

func (a *API) deleteMessage(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "DELETE") {
		return
	}
	u := a.moderator(w, r)
	if u == nil {
		return
	}
	ctx, cancel := context.WithTimeout(chat.NewContextWithUser(r.Context(), u), 10*time.Second)
	defer cancel()
	if err := a.o.Trust.Moderation.Delete(ctx, u, r.PathValue("id")); err != nil {
		moderationError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// maxLimitedAddrs bounds the addresses the sign-in limit remembers.
const maxLimitedAddrs = 100_000

// maxBody bounds the JSON bodies of these endpoints.
const maxBody = 4 << 10

// readJSON decodes r's body (at most maxBody bytes) into v; it answers 400
// itself on failure.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "the body must be a JSON object of at most 4 KB")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "the body must be a JSON object")
		return false
	}
	return true
}

type banRequest struct {
	UserID      string   `json:"userId"`
	Username    string   `json:"username"`
	IP          string   `json:"ip"`
	DurationSec *float64 `json:"durationSec"`
	Reason      string   `json:"reason"`
}

func (a *API) addBan(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "GET, POST") {
		return
	}
	u := a.moderator(w, r)
	if u == nil {
		return
	}
	var req banRequest
	if !readJSON(w, r, &req) {
		return
	}
	br := chat.BanRequest{UserID: req.UserID, Username: req.Username, IP: req.IP, Reason: req.Reason}
	if req.DurationSec != nil {
		d := *req.DurationSec
		if d < 0 || d > 1e9 || d != float64(int64(d)) {
			fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "durationSec must be a whole number of seconds, 0 or more")
			return
		}
		br.Duration = time.Duration(d) * time.Second
	}
	b, err := a.o.Trust.Moderation.Ban(r.Context(), u, br)
	if err != nil {
		moderationError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, b.Wire())
}

func (a *API) listBans(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "GET, POST") {
		return
	}
	if r.Method == http.MethodPost {
		a.addBan(w, r)
		return
	}
	if a.moderator(w, r) == nil {
		return
	}
	bans := a.o.Trust.Moderation.Bans()
	out := make([]chat.BanWire, len(bans))
	for i, b := range bans {
		out[i] = b.Wire()
	}
	writeJSON(w, http.StatusOK, map[string]any{"bans": out})
}

func (a *API) liftBan(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "DELETE") {
		return
	}
	u := a.moderator(w, r)
	if u == nil {
		return
	}
	if err := a.o.Trust.Moderation.Lift(r.Context(), u, r.PathValue("id")); err != nil {
		moderationError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// session is the guest sign-in: POST /api/session {username} -> {token,
// expiresAt}. A name another live guest session holds is refused (409)
// until that session's token expires; the holder itself renews with its
// current token as Authorization: Bearer (and gets the same user id).
func (a *API) session(w http.ResponseWriter, r *http.Request) {
	if a.corsMethods(w, r, "POST") {
		return
	}
	t := a.o.Trust
	now := t.Now()
	addr := a.o.ClientAddr(r)
	if ok, wait := a.signIns.Take(addr, now); !ok {
		secs := int64((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		fail(w, http.StatusTooManyRequests, chat.CodeRateLimited,
			fmt.Sprintf("too many sign-ins from your address (AUTH_GUEST_SIGNINS_PER_MIN); retry in %d s", secs))
		return
	}
	var req struct {
		Username string `json:"username"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	name, err := chat.CleanName(req.Username, t.Limits)
	if err != nil {
		e := chat.CodeOf(err)
		fail(w, http.StatusBadRequest, e.Code, e.Reason)
		return
	}
	if name == "" {
		fail(w, http.StatusBadRequest, chat.CodeInvalidPayload, "username is empty")
		return
	}
	if t.Moderation != nil {
		if b, banned := t.Moderation.Match(nil, name, addr); banned {
			msg := "this name or address is banned"
			if !b.Until.IsZero() {
				msg += " until " + b.Until.UTC().Format(chat.TimeLayout)
			}
			fail(w, http.StatusForbidden, chat.CodeBanned, msg)
			return
		}
	}
	// A renewal: the current guest token of the same name keeps its id and
	// when its session began, until GuestMaxLifetime after that; then the
	// guest starts afresh (its name is free by then: its last token ended
	// at the ceiling).
	id, since := "", now
	if tok := bearerToken(r); tok != "" && t.Verifier != nil {
		if u, err := t.Verifier.Verify(r.Context(), tok); err == nil && u.Guest && chat.FoldName(u.Name) == chat.FoldName(name) &&
			(u.GuestSince.IsZero() || now.Before(u.GuestSince.Add(t.GuestMaxLifetime))) {
			id = u.ID
			if !u.GuestSince.IsZero() {
				since = u.GuestSince
			}
		}
	}
	until := now.Add(t.GuestTTL)
	if ceiling := since.Add(t.GuestMaxLifetime); ceiling.Before(until) {
		until = ceiling
	}
	token, sub, exp, err := t.Guests.SignGuest(name, id, since, until, now)
	if err != nil {
		fail(w, http.StatusInternalServerError, chat.CodeInternal, "the server could not sign a token")
		return
	}
	err = t.Names.Claim(r.Context(), chat.NameClaim{Name: name, Holder: sub, Until: exp, Addr: chat.ClientKey(addr), PerAddr: t.GuestNamesPerAddress})
	switch {
	case errors.Is(err, chat.ErrNameTaken):
		fail(w, http.StatusConflict, chat.CodeNameTaken, chat.ErrNameTaken.Reason)
		return
	case errors.Is(err, chat.ErrNamesPerAddress):
		fail(w, http.StatusTooManyRequests, chat.CodeTooManyNames, chat.ErrNamesPerAddress.Reason+" (AUTH_GUEST_NAMES_PER_IP)")
		return
	case err != nil:
		t.Logger.Warn("guest names unavailable", "err", err)
		fail(w, http.StatusServiceUnavailable, chat.CodeUnavailable, "sign-in is unavailable right now; try again shortly")
		return
	}
	if a.o.Rooms.Service != nil {
		// dm:open and room:invite find the guest from now on.
		if err := a.o.Rooms.Service.SeeUser(r.Context(), &chat.User{ID: sub, Name: name, Guest: true}); err != nil {
			t.Logger.Warn("a guest could not be recorded as a user", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "expiresAt": exp.UTC().Format(chat.TimeLayout), "userId": sub, "username": name})
}
