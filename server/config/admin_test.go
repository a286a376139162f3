package config

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestAdminUI(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), MinAdminUIBcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	h := string(hash)
	cheap, err := bcrypt.GenerateFromPassword([]byte("secret"), MinAdminUIBcryptCost-1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want AdminUI
		bad  string // the variable the error names; "" when valid
	}{
		{"off by default", nil, AdminUI{SocketsLimit: 10_000, SignInBackoffMax: 5 * time.Minute}, ""},
		{"on with credentials", map[string]string{"ADMIN_UI": "on", "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD_HASH": h, "ADMIN_UI_SOCKETS_LIMIT": "50"},
			AdminUI{Enabled: true, Username: "admin", PasswordHash: h, SocketsLimit: 50, SignInBackoffMax: 5 * time.Minute}, ""},
		{"a hash with $2y$ (htpasswd)", map[string]string{"ADMIN_UI": "on", "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD_HASH": "$2y" + h[3:]},
			AdminUI{Enabled: true, Username: "admin", PasswordHash: "$2y" + h[3:], SocketsLimit: 10_000, SignInBackoffMax: 5 * time.Minute}, ""},
		{"noauth", map[string]string{"ADMIN_UI": "noauth"}, AdminUI{Enabled: true, SocketsLimit: 10_000, SignInBackoffMax: 5 * time.Minute}, ""},
		{"on without credentials", map[string]string{"ADMIN_UI": "on"}, AdminUI{}, "ADMIN_UI="},
		{"on without a hash", map[string]string{"ADMIN_UI": "on", "ADMIN_UI_USERNAME": "admin"}, AdminUI{}, "ADMIN_UI="},
		{"a password instead of a hash", map[string]string{"ADMIN_UI": "on", "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD_HASH": "hunter2"}, AdminUI{}, "ADMIN_UI_PASSWORD_HASH="},
		// Cost 9 halves an offline guesser's work, and a flood of sign-ins costs
		// the node less than it costs the guesser: 10 is the usual floor.
		{"a hash below cost 10", map[string]string{"ADMIN_UI": "on", "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD_HASH": string(cheap)}, AdminUI{}, "ADMIN_UI_PASSWORD_HASH="},
		{"noauth with credentials", map[string]string{"ADMIN_UI": "noauth", "ADMIN_UI_USERNAME": "admin", "ADMIN_UI_PASSWORD_HASH": h}, AdminUI{}, "ADMIN_UI="},
		{"a back-off under a second", map[string]string{"ADMIN_UI": "noauth", "ADMIN_UI_SIGNIN_BACKOFF_MAX": "10ms"}, AdminUI{}, "ADMIN_UI_SIGNIN_BACKOFF_MAX="},
		{"another mode", map[string]string{"ADMIN_UI": "yes"}, AdminUI{}, "ADMIN_UI="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromLookup(lookup(tt.env))
			if tt.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("error %v does not name %s", err, tt.bad)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("the error shows the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AdminUI != tt.want {
				t.Fatalf("got %+v, want %+v", c.AdminUI, tt.want)
			}
		})
	}
}
