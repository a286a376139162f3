package chat

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
