//go:build faulthooks

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/scalable-chat-go/server/kafka"
)

// afterCommitHook is the consumer's fault hook, built only with the tag
// faulthooks (the tests' builds; see faulthook_off.go for every other):
// with KAFKA_TEST_CRASH_AFTER_COMMIT=N the consumer kills its own process
// right after its Nth batch is committed to the store, before the batch's
// offsets are marked. Unset or 0, there is no hook.
func afterCommitHook(logger *slog.Logger) (func(kafka.Committed), error) {
	v := os.Getenv("KAFKA_TEST_CRASH_AFTER_COMMIT")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("KAFKA_TEST_CRASH_AFTER_COMMIT=%q: want a whole number of batches, 0 or more", v)
	}
	if n == 0 {
		return nil, nil
	}
	logger.Warn("fault hook armed: the consumer kills this process after a store commit", "hook", "KAFKA_TEST_CRASH_AFTER_COMMIT", "batch", n)
	return crashAfterCommit(n, logger), nil
}

// crashAfterCommit is the hook of KAFKA_TEST_CRASH_AFTER_COMMIT: after the
// nth batch committed to the store, and before its offsets are marked, it
// logs where it stands and kills the process (SIGKILL: no deferred code, no
// offset commit).
func crashAfterCommit(n int, logger *slog.Logger) func(kafka.Committed) {
	var count atomic.Int64
	return func(b kafka.Committed) {
		if count.Add(1) != int64(n) {
			return
		}
		logger.Error("fault hook: killing the process after a store commit, before marking its offsets",
			"hook", "KAFKA_TEST_CRASH_AFTER_COMMIT", "batch", n, "topic", b.Topic, "partition", b.Partition,
			"first_offset", b.FirstOffset, "last_offset", b.LastOffset, "records", b.Records, "stored", b.Stored)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; mark nothing meanwhile
	}
}
