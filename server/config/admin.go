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

// adminUIMode reads ADMIN_UI: off, on (with both credentials) or noauth.
// Running the namespace without credentials is a choice to make explicitly
// (ADMIN_UI=noauth), as @socket.io/admin-ui's instrument() asks for `auth:
// false`.
func adminUIMode() reader {
	allowed := []string{"off", "on", "noauth"}
	return reader{def: code("off"), accepts: codes(allowed), read: func(p *parser, name string, c *Config) {
		p.adminUIMode = p.oneOf(name, "off", allowed...)
		c.AdminUI.Enabled = p.adminUIMode != "off"
	}}
}

// checkAdminUI checks ADMIN_UI against its credentials.
func checkAdminUI(p *parser, c *Config) {
	a := c.AdminUI
	switch p.adminUIMode {
	case "on":
		if a.Username == "" || a.PasswordHash == "" {
			p.fail("ADMIN_UI", p.adminUIMode, "ADMIN_UI_USERNAME and ADMIN_UI_PASSWORD_HASH set with it (or ADMIN_UI=noauth for an Admin UI without a password)")
		}
	case "noauth":
		if a.Username != "" || a.PasswordHash != "" {
			p.fail("ADMIN_UI", p.adminUIMode, "no ADMIN_UI_USERNAME or ADMIN_UI_PASSWORD_HASH with it (they would be ignored): use ADMIN_UI=on")
		}
	}
}

// checkAdminUIHash checks that ADMIN_UI_PASSWORD_HASH is a bcrypt hash of
// cost MinAdminUIBcryptCost or more.
func checkAdminUIHash(p *parser, c *Config) {
	h := c.AdminUI.PasswordHash
	if h == "" {
		return
	}
	// The hash is not a secret, but keep it out of the message anyway.
	shown := strings.Repeat("*", min(len(h), 8))
	cost, err := bcrypt.Cost([]byte(h))
	switch {
	case err != nil:
		p.fail("ADMIN_UI_PASSWORD_HASH", shown,
			"a bcrypt hash ($2a$, $2b$ or $2y$, e.g. from `htpasswd -nbBC 10 '' PASSWORD`); in a .env file, quote it with single quotes")
	case cost < MinAdminUIBcryptCost:
		p.fail("ADMIN_UI_PASSWORD_HASH", shown,
			fmt.Sprintf("a bcrypt hash of cost %d or more (this one has %d: `htpasswd -nbBC %d '' PASSWORD`)", MinAdminUIBcryptCost, cost, MinAdminUIBcryptCost))
	}
}
