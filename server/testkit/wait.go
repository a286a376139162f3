// Package testkit holds what the server's tests share: a wait that says
// what it saw when it gives up, and a child process whose output is kept
// for the failure message.
//
// It imports nothing of the project, so any package's tests (and the
// benchmark, another module) can use it.
package testkit

import (
	"testing"
	"time"
)

// Poll is how often Until checks its condition.
const Poll = 20 * time.Millisecond

// Until checks cond every Poll until it reports ok, and fails t after
// within, naming what it waited for and the last thing cond saw: a wait
// that gives up says why, so that a slow machine and a bug can be told
// apart.
func Until(t testing.TB, within time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Since(start) > within {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", within, what, seen)
		}
		time.Sleep(Poll)
	}
}
