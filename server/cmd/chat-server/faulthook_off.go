//go:build !faulthooks

package main

import (
	"log/slog"

	"github.com/scalable-chat-go/server/kafka"
)

// afterCommitHook is nil in every build but the tests' (the tag faulthooks,
// faulthook.go): a production server has no fault hook, and no setting
// turns one on.
func afterCommitHook(*slog.Logger) (func(kafka.Committed), error) { return nil, nil }
