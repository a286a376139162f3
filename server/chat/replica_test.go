package chat

import (
	"testing"
	"time"
)

// A replica stores other nodes' messages and deletions, and nothing else.
func TestReplicaStoresMessagesAndDeletions(t *testing.T) {
	l := &fakeLog{}
	r := NewReplica(l, nil)
	m := Message{ID: "m-1", Text: "hi", CreatedAt: time.UnixMilli(1)}
	r.HandlePublication(GlobalRoom, MessageEvent(m))
	r.HandlePublication(GlobalRoom, DeletionEvent(Deletion{ID: "m-0"}))
	r.HandlePublication(GlobalRoom, Event{Name: EventTyping, Data: "x"})
	r.HandleUserEvent("u", MessageEvent(Message{ID: "m-2"}))
	if len(l.admitted) != 1 || l.admitted[0].ID != "m-1" || len(l.deleted) != 1 || l.deleted[0].ID != "m-0" {
		t.Fatalf("admitted %+v, deleted %+v", l.admitted, l.deleted)
	}
	l.full = true
	r.HandlePublication(GlobalRoom, MessageEvent(Message{ID: "m-3"}))
	r.HandlePublication(GlobalRoom, MessageEvent(Message{ID: "m-4"}))
	if r.refused != 1 { // the first was logged, the second counted
		t.Fatalf("refused %d since the last log line, want 1", r.refused)
	}
}
