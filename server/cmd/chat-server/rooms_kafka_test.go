package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/testkit"
)

// preRoomsCommit is the last main before rooms (and before the hub): its
// consumer knows message and deletion records, and no room.
const preRoomsCommit = "7d2fba8"

var preRoomsBuild struct {
	once sync.Once
	bin  string
	err  string
}

// preRoomsBinary returns chat-server as it was at preRoomsCommit, built from
// the repository's history on first use. A clone without that commit (a
// shallow one) fails the test, saying so.
func preRoomsBinary(t *testing.T) string {
	t.Helper()
	preRoomsBuild.once.Do(func() {
		root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			preRoomsBuild.err = "not in a git checkout (git rev-parse: " + err.Error() + "): this test builds the server of commit " + preRoomsCommit
			return
		}
		repo := strings.TrimSpace(string(root))
		if out, err := exec.Command("git", "-C", repo, "cat-file", "-e", preRoomsCommit+"^{commit}").CombinedOutput(); err != nil {
			preRoomsBuild.err = "the repository's history lacks commit " + preRoomsCommit + " (the server before rooms), which this test " +
				"builds to check an older consumer: fetch the whole history (git fetch --unshallow): " + strings.TrimSpace(string(out))
			return
		}
		dir := filepath.Join(buildDir, "pre-rooms")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			preRoomsBuild.err = err.Error()
			return
		}
		archive := exec.Command("bash", "-c", `git -C "$1" archive --format=tar "$2" server | tar -x -C "$3"`, "-", repo, preRoomsCommit, dir)
		if out, err := archive.CombinedOutput(); err != nil {
			preRoomsBuild.err = "extract the server of " + preRoomsCommit + ": " + err.Error() + "\n" + string(out)
			return
		}
		bin := filepath.Join(dir, "chat-server")
		build := exec.Command("go", "build", "-o", bin, "./cmd/chat-server")
		build.Dir = filepath.Join(dir, "server")
		build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		if out, err := build.CombinedOutput(); err != nil {
			preRoomsBuild.err = "build the server of " + preRoomsCommit + ": " + err.Error() + "\n" + string(out)
			return
		}
		preRoomsBuild.bin = bin
	})
	if preRoomsBuild.err != "" {
		t.Fatal(preRoomsBuild.err)
	}
	return preRoomsBuild.bin
}

// A consumer of a version before rooms sends a room's message to the
// dead-letter topic, never into the global room: the record this
// version's producer writes has a chat-event it does not know. Messages of
// the global room, before and after it, it stores as ever. This is why
// the consumers are upgraded first (docs/operators.md).
func TestKafkaPreRoomsConsumerDeadLettersRoomMessages(t *testing.T) {
	t.Parallel()
	k := newKafkaEnv(t)
	old := preRoomsBinary(t)

	log, err := kafka.NewLog(kafka.LogOptions{Connection: kafka.Connection{Brokers: k.brokers}, Topic: k.topic, Partitions: 6,
		Buffer: 100, Compression: "gzip", RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = log.Close(ctx)
	}()
	base := time.Now().UTC().Truncate(time.Millisecond)
	before := chat.Message{ID: "0193a1b2-0000-7000-8000-0000000000b1", Text: "global, before", Username: "ada", CreatedAt: base}
	inRoom := chat.Message{ID: "0193a1b2-0000-7000-8000-0000000000b2", Text: "a private word", Username: "zoe", UserID: "auth0|zoe",
		Room: "0193a1b2-0000-7000-8000-00000000beef", CreatedAt: base.Add(time.Millisecond)}
	after := chat.Message{ID: "0193a1b2-0000-7000-8000-0000000000b3", Text: "global, after", Username: "ada", CreatedAt: base.Add(2 * time.Millisecond)}
	done := make(chan error, 3)
	for _, m := range []chat.Message{before, inRoom, after} {
		if err := log.Append(m, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	startBinary(t, old, "", k.env()...)
	testkit.Until(t, 60*time.Second, "the older consumer to store the global room's messages and dead-letter the room's", func() (bool, string) {
		rows := k.rows()
		dead, err := k.countRecords(k.dlq)
		_, b := rows[before.ID]
		_, a := rows[after.ID]
		return b && a && dead == 1, fmt.Sprintf("rows %v; %d dead letters (%v)", keys(rows), dead, err)
	})
	if _, stored := k.rows()[inRoom.ID]; stored {
		t.Fatal("the older consumer stored the room's message (as one of the global room)")
	}
	var dead *sarama.ConsumerMessage
	for _, recs := range k.records(k.dlq) {
		dead = recs[0]
	}
	headers := map[string]string{}
	for _, h := range dead.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	if string(dead.Key) != inRoom.ID || string(dead.Value) != inRoom.Text || headers[kafka.HeaderRoom] != inRoom.Room ||
		!strings.Contains(headers[kafka.HeaderDLQReason], `unknown "chat-event" header "room-message"`) {
		t.Fatalf("dead letter key %q value %q headers %v: want the room's record as it was, and why", dead.Key, dead.Value, headers)
	}
}

// countRecords returns how many records topic holds, or an error while it
// is not there yet, or its partitions have no leader yet.
func (k *kafkaEnv) countRecords(topic string) (int64, error) {
	client, err := sarama.NewClient(k.brokers, k.saramaConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		n += newest - oldest
	}
	return n, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
