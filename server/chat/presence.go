package chat

import (
	"slices"
	"strings"
	"time"
)

// OnlineUser is one user in the presence list: a verified user (UserID
// set), or a name a client gave.
type OnlineUser struct {
	Name   string
	UserID string
	// Since is when the user's earliest connection still open connected.
	Since time.Time
}

// Key identifies the user in the list: its verified id, else its name.
func (u OnlineUser) Key() string {
	if u.UserID != "" {
		return "id:" + u.UserID
	}
	return "name:" + u.Name
}

// PresenceView is who is online: the count of connections, and the
// distinct users among those that have a name (anonymous connections are
// counted only). Truncated: more users than the list limit; Users is then
// empty and only the count is known.
type PresenceView struct {
	Online    int
	Users     []OnlineUser
	Truncated bool
}

// MergeUsers returns one entry per user of lists (the earliest Since),
// ordered by Since, then name; at most limit of them (limit < 0: no
// bound), truncated reporting that there were more.
func MergeUsers(limit int, lists ...[]OnlineUser) (users []OnlineUser, truncated bool) {
	byKey := map[string]int{}
	for _, l := range lists {
		for _, u := range l {
			if i, ok := byKey[u.Key()]; ok {
				if u.Since.Before(users[i].Since) {
					users[i].Since = u.Since
				}
				continue
			}
			byKey[u.Key()] = len(users)
			users = append(users, u)
		}
	}
	if limit >= 0 && len(users) > limit {
		return nil, true
	}
	slices.SortFunc(users, func(a, b OnlineUser) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return users, false
}
