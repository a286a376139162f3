package sqlstore

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// FuzzRedactURL writes DATABASE_URL as operators do, with any user,
// password, host and extra parameters: the password in the user part
// (escaped, or written as it is, as a password manager gives it), in a
// password or sslpassword parameter, or in libpq's key=value form. The URL
// goes to the logs through RedactURL, and parse errors to the start-up
// message: neither may ever hold the password.
func FuzzRedactURL(f *testing.F) {
	f.Add("chat", "s3cret!!", "db:5432", "schema=public", uint8(0))
	f.Add("chat", "p%ss#w@rd", "db", "", uint8(2))
	f.Fuzz(func(t *testing.T, user, password, host, query string, form uint8) {
		raw, secret, ok := databaseURL(user, password, host, query, form)
		// pgx reads the files such parameters name (a FIFO or /dev/zero
		// would never end): only sslkey=k, which it refuses without sslcert.
		if !ok || readsFiles(raw) {
			return
		}
		// The same URL with a password of control bytes: what its output
		// shows is the server's own text, not the password.
		other, _, _ := databaseURL(user, strings.Repeat("\x01", len(password)), host, query, form)
		if got := RedactURL(raw); leaks(raw, got, RedactURL(other), secret, password) {
			t.Fatalf("RedactURL(%q) = %q: the password %q is in it", raw, got, password)
		}
		if _, err := parsePostgresURL(raw); err != nil {
			_, err2 := parsePostgresURL(other)
			if leaks(raw, err.Error(), fmt.Sprint(err2), secret, password) {
				t.Fatalf("parsePostgresURL(%q): %v: the password %q is in it", raw, err, password)
			}
		}
	})
}

// databaseURL writes a DATABASE_URL of the form with the parts, and the
// password as the URL holds it (escaped or not); ok is false when the form
// cannot hold this password.
func databaseURL(user, password, host, query string, form uint8) (raw, secret string, ok bool) {
	switch form % 5 {
	case 0: // the user part, escaped
		raw = "postgresql://" + url.UserPassword(user, password).String() + "@" + host + "/chat?" + query
		secret = url.UserPassword("", password).String()[1:]
	case 1: // a password parameter
		raw = "postgresql://" + host + "/chat?user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(password) + "&" + query
		secret = url.QueryEscape(password)
	case 2: // the user part as it was pasted, unescaped
		raw = "postgresql://" + user + ":" + password + "@" + host + "/chat"
		secret = password
	case 3: // a client key's password
		raw = "postgresql://" + user + "@" + host + "/chat?sslkey=k&sslpassword=" + url.QueryEscape(password) + "&" + query
		secret = url.QueryEscape(password)
	default: // libpq's key=value form
		if strings.ContainsAny(password, " '\\\t\n\r\v\f") || password == "" {
			return "", "", false
		}
		raw = "host=" + host + " user=" + user + " password=" + password + " dbname=chat"
		secret = password
	}
	return raw, secret, true
}

// leaks reports whether out holds a piece (four bytes or more) of one of
// the secrets that raw holds only inside that secret and that base (the
// output for another password) does not hold: a password shown whole or
// in part.
func leaks(raw, out, base string, secrets ...string) bool {
	const piece = 4
	for _, secret := range secrets {
		for i := 0; i+piece <= len(secret); i++ {
			w := secret[i : i+piece]
			if strings.Count(raw, w) == 1 && strings.Contains(out, w) && !strings.Contains(base, w) {
				return true
			}
		}
	}
	return false
}

// readsFiles reports whether raw names a file pgx would read: a
// certificate, a key other than the "k" the target adds, a password or
// service file.
func readsFiles(raw string) bool {
	s := strings.ToLower(raw)
	if u, err := url.QueryUnescape(s); err == nil {
		s = u
	}
	s = strings.Replace(s, "sslkey=k&", "", 1)
	for _, name := range []string{"sslcert", "sslrootcert", "sslkey", "sslcrl", "passfile", "service"} {
		if strings.Contains(s, name) {
			return true
		}
	}
	return false
}
