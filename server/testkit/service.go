package testkit

import (
	"os"
	"testing"
)

// Service returns the address of a real service that t needs, from the
// environment variable name (DATABASE_URL, REDIS_URL, KAFKA_BROKERS, as
// scripts/services prints them). It fails t when the variable is not set,
// saying how to start the service: a test that needs a service never skips
// for want of one. Only under `go test -short` is t skipped, since -short
// asks for the tests that need no service.
func Service(t testing.TB, name, what string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s (%s): -short runs only the tests that need no service", what, name)
	}
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: this test needs the real %s. "+
			`Start it with: eval "$(scripts/services up)" (or run scripts/test, whose services stage does it)`, name, what)
	}
	return v
}
