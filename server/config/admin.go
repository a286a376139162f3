package config

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// MinAdminUIBcryptCost is the least bcrypt cost ADMIN_UI_PASSWORD_HASH may
// have: the usual floor (htpasswd -B and bcryptjs default to it). A cheaper
// hash, if it leaks, falls to an offline guesser sooner.
const MinAdminUIBcryptCost = 10

// AdminUI configures the server side of the Socket.IO Admin UI
// (@socket.io/admin-ui): its /admin namespace.
type AdminUI struct {
	// Enabled serves the /admin namespace (ADMIN_UI=on or noauth; off by
	// default).
	Enabled bool
	// Username and PasswordHash (a bcrypt hash) are the credentials the
	// UI's connection form must give (ADMIN_UI_USERNAME,
	// ADMIN_UI_PASSWORD_HASH); both empty with ADMIN_UI=noauth only.
	Username     string
	PasswordHash string
	// SocketsLimit is the most sockets of one node the UI lists
	// (ADMIN_UI_SOCKETS_LIMIT).
	SocketsLimit int
	// SignInBackoffMax is the longest one client address waits between
	// sign-in attempts after failures (ADMIN_UI_SIGNIN_BACKOFF_MAX).
	SignInBackoffMax time.Duration
}

// adminUI reads ADMIN_UI and its credentials. ADMIN_UI=on needs both
// credentials; running the namespace without any is a choice to make
// explicitly (ADMIN_UI=noauth), as @socket.io/admin-ui's instrument() asks
// for `auth: false`.
func (p *parser) adminUI() AdminUI {
	a := AdminUI{
		Username:     p.str("ADMIN_UI_USERNAME", ""),
		PasswordHash: p.str("ADMIN_UI_PASSWORD_HASH", ""),
		SocketsLimit: p.intIn("ADMIN_UI_SOCKETS_LIMIT", 10_000, 1, 1_000_000),
		// 1 s after the first failure, doubling: after 9 failures in a row
		// one guess per 5 minutes from an address.
		SignInBackoffMax: p.duration("ADMIN_UI_SIGNIN_BACKOFF_MAX", 5*time.Minute, time.Second),
	}
	mode := p.oneOf("ADMIN_UI", "off", "off", "on", "noauth")
	if a.PasswordHash != "" {
		// The hash is not a secret, but keep it out of the message anyway.
		shown := strings.Repeat("*", min(len(a.PasswordHash), 8))
		cost, err := bcrypt.Cost([]byte(a.PasswordHash))
		switch {
		case err != nil:
			p.fail("ADMIN_UI_PASSWORD_HASH", shown,
				"a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from `htpasswd -nbBC 10 '' PASSWORD`); in a .env file, quote it with single quotes")
		case cost < MinAdminUIBcryptCost:
			p.fail("ADMIN_UI_PASSWORD_HASH", shown,
				fmt.Sprintf("a bcrypt hash of cost %d or more (this one has %d: `htpasswd -nbBC %d '' PASSWORD`)", MinAdminUIBcryptCost, cost, MinAdminUIBcryptCost))
		}
	}
	switch mode {
	case "on":
		a.Enabled = true
		if a.Username == "" || a.PasswordHash == "" {
			p.fail("ADMIN_UI", mode, "ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH set with it (or ADMIN_UI=noauth for an Admin UI without a password)")
		}
	case "noauth":
		a.Enabled = true
		if a.Username != "" || a.PasswordHash != "" {
			p.fail("ADMIN_UI", mode, "no ADMIN_UI_USERNAME or ADMIN_UI_PASSWORD_HASH with it (they would be ignored): use ADMIN_UI=on")
		}
	}
	return a
}
