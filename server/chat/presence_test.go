package chat

import (
	"strings"
	"testing"
	"time"
)

func TestMergeUsers(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := []OnlineUser{{Name: "ann", Since: t0.Add(2 * time.Second)}, {Name: "bob", UserID: "u1", Since: t0.Add(time.Second)}}
	b := []OnlineUser{{Name: "ann", Since: t0}, {Name: "Bob (other tab)", UserID: "u1", Since: t0.Add(3 * time.Second)}, {Name: "cid", Since: t0.Add(time.Second)}}
	users, truncated := MergeUsers(10, a, b)
	if truncated || len(users) != 3 {
		t.Fatalf("%v %v", users, truncated)
	}
	if users[0].Name != "ann" || !users[0].Since.Equal(t0) {
		t.Errorf("first %+v: want ann since t0 (the earliest of her tabs)", users[0])
	}
	if users[1].UserID != "u1" || users[1].Name != "bob" || users[2].Name != "cid" {
		t.Errorf("order %+v: by since, then key; a verified user keeps its first name", users)
	}
	if _, truncated := MergeUsers(2, a, b); !truncated {
		t.Error("three users over a limit of two: not truncated")
	}
	if users, _ := MergeUsers(-1); len(users) != 0 {
		t.Errorf("no lists: %v", users)
	}
}

func TestCleanName(t *testing.T) {
	l := DefaultLimits()
	if n, err := CleanName("  ann\x00 ", l); err != nil || n != "ann" {
		t.Fatalf("%q %v", n, err)
	}
	if _, err := CleanName(strings.Repeat("a", 65), l); err == nil {
		t.Fatal("a name of 65 characters accepted")
	}
}
