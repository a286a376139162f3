package chat

import (
	"strings"
	"unicode/utf8"
)

// CleanName validates a display name a client gives outside a message (in
// its CONNECT auth, or with typing) by the same rules as a message's
// username, and returns it cleaned; the error is an *Error
// (CodeUsernameTooLong).
func CleanName(name string, l Limits) (string, error) {
	d, err := ParseDraft(map[string]any{"message": ".", "username": name}, l)
	if err != nil {
		return "", err
	}
	return d.Username, nil
}

// DisplayName cleans a name a verified token gives (its name claim) by the
// rules of a username, and cuts it to the limit rather than refusing it:
// the token's issuer chose it, not the client.
func DisplayName(name string, l Limits) string {
	name = clean(name, true)
	if l.MaxUsernameLength > 0 && utf8.RuneCountInString(name) > l.MaxUsernameLength {
		r := []rune(name)
		name = strings.TrimSpace(string(r[:l.MaxUsernameLength]))
	}
	return name
}
