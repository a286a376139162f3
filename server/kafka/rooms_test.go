package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/testkit"
)

// A message of a room goes through the topic with its room (headers
// chat-event: room-message and room, the message id as key) and is stored
// in its room; its deletion, a record without a room, hides it there.
func TestRoomMessagesThroughTheLog(t *testing.T) {
	store := newStore(t)
	p := newPipeline(t, store, pipelineOptions{})
	global := chattest.Msg("0193a1b2-0000-7000-8000-0000000000a1", "in the global room", 1)
	inRoom := chattest.Msg("0193a1b2-0000-7000-8000-0000000000a2", "in a room", 2)
	inRoom.Room, inRoom.UserID = "0193a1b2-0000-7000-8000-00000000f00d", "auth0|zoe"
	done := make(chan error, 3)
	for _, m := range []chat.Message{global, inRoom} {
		if err := p.log.Append(m, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	testkit.Until(t, 30*time.Second, "the room's message stored in its room", func() (bool, string) {
		page, err := store.Recent(ctx, inRoom.Room, 10, nil)
		return err == nil && len(page) == 1 && page[0] == inRoom, describe(page, err)
	})
	if page, err := store.Recent(ctx, chat.GlobalRoom, 10, nil); err != nil || len(page) != 1 || page[0] != global {
		t.Fatalf("the global room's page: %s", describe(page, err))
	}

	if err := p.log.Delete(chat.Deletion{ID: inRoom.ID, By: "auth0|owner", At: inRoom.CreatedAt.Add(time.Second)}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 30*time.Second, "the room's message hidden by its deletion", func() (bool, string) {
		page, err := store.Recent(ctx, inRoom.Room, 10, nil)
		return err == nil && len(page) == 0, describe(page, err)
	})
	if m, err := store.Find(ctx, inRoom.ID); err != nil || m.Room != inRoom.Room {
		t.Fatalf("Find of the deleted message: %+v %v", m, err)
	}

	recs := readTopic(t, p.conn.Brokers, p.topic)
	if len(recs) != 3 {
		t.Fatalf("%d records, want the two messages and the deletion", len(recs))
	}
	for _, r := range recs {
		event, _ := header(r, kafka.HeaderEvent)
		room, hasRoom := header(r, kafka.HeaderRoom)
		if string(r.Key) != inRoom.ID && string(r.Key) != global.ID {
			t.Errorf("record key %q, want a message id", r.Key)
		}
		switch {
		case string(r.Key) == global.ID:
			if event != "" || hasRoom {
				t.Errorf("the global room's record has chat-event %q, room %q", event, room)
			}
		case event == kafka.EventDeleted:
			if hasRoom {
				t.Errorf("the deletion's record has a room %q", room)
			}
		case event != kafka.EventRoomMessage || room != inRoom.Room:
			t.Errorf("the room's record has chat-event %q, room %q", event, room)
		}
	}
}

func describe(page []chat.Message, err error) string {
	if err != nil {
		return err.Error()
	}
	out := ""
	for _, m := range page {
		out += m.ID + " (room " + m.Room + ") "
	}
	return "page: " + out
}
