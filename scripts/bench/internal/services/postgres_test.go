package services

import "testing"

func TestPostgresHost(t *testing.T) {
	for in, ok := range map[string]bool{
		"postgresql://chat:chat@127.0.0.1:55432/chat?sslmode=disable": true,
		"postgres://u@localhost/db":                                   true,
		"postgresql://u@db.example.org:5432/chat":                     false,
		"mysql://127.0.0.1/db":                                        false,
	} {
		if err := PostgresHost(in); (err == nil) != ok {
			t.Errorf("PostgresHost(%q) = %v, want ok %v", in, err, ok)
		}
	}
	u, err := WithDatabase("postgresql://chat:chat@127.0.0.1:55432/chat?sslmode=disable", "bench_1")
	if err != nil || u != "postgresql://chat:chat@127.0.0.1:55432/bench_1?sslmode=disable" {
		t.Errorf("WithDatabase = %q, %v", u, err)
	}
}
