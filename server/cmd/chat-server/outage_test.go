//go:build outage

package main

import (
	"os/exec"
	"testing"

	"github.com/scalable-chat-go/server/sqlstore/pgtest"
)

// The outage of TestPostgresDownFor15s made real: the shared PostgreSQL of
// scripts/services is stopped (fast shutdown: open sessions get FATAL
// 57P01, new connections are refused) and started again 15 s later. Built
// with the tag `outage` only: scripts/test's outage stage runs such tests
// one package at a time, with nothing else using the services.
func TestOutagePostgresStopped15s(t *testing.T) {
	db := pgtest.NewDatabase(t)
	services := func(args ...string) {
		t.Helper()
		out, err := exec.Command("../../../scripts/services", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("scripts/services %v: %v\n%s", args, err, out)
		}
	}
	// However the test ends, PostgreSQL runs again afterwards.
	t.Cleanup(func() { _ = exec.Command("../../../scripts/services", "start", "postgres").Run() })
	runOutage(t, db, db, func() { services("stop", "postgres") }, func() { services("start", "postgres") })
}
