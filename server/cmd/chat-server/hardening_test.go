package main

import (
	"strings"
	"testing"
)

// Issue 16, item 1: a message id is broadcast to everyone, so another
// client must not be able to take it over by sending it as its clientId.
// Only the same connection retrying the same content is a retry; anything
// else is refused with client_id_taken, and neither broadcast nor stored.
func TestClientIDCannotBeTakenOver(t *testing.T) {
	p := start(t, "", "RATE_LIMIT_PER_SEC=0", "HISTORY_LIMIT=0")
	bob := dialSIO(t, p.URL, "websocket")
	mallory := dialSIO(t, p.URL, "websocket")

	const id = "0191d2c4-7b1e-7c3a-9f00-5a1b2c3d4e5f"
	original := `{"message":"the original","username":"bob","clientId":"` + id + `"}`
	if ack := bob.ack(original); ack["ok"] != true || ack["id"] != id {
		t.Fatalf("bob's ack = %v", ack)
	}
	if m := mallory.message(); m.ID != id || m.Message != "the original" {
		t.Fatalf("mallory received %+v", m)
	}
	// Bob's message without a clientId: its id is the server's, and is
	// broadcast too.
	plain := bob.ack(`{"message":"no client id","username":"bob"}`)
	serverID, _ := plain["id"].(string)
	if plain["ok"] != true || serverID == "" {
		t.Fatalf("bob's second ack = %v", plain)
	}
	if m := mallory.message(); m.ID != serverID {
		t.Fatalf("mallory received %+v, want id %s", m, serverID)
	}

	refused := func(who *sio, payload, what string) {
		t.Helper()
		ack := who.ack(payload)
		e, _ := ack["error"].(map[string]any)
		if ack["ok"] == true || e["code"] != "client_id_taken" {
			t.Fatalf("%s: ack = %v, want a refusal with client_id_taken", what, ack)
		}
		ev, _ := who.event("error").(map[string]any)
		if ev["code"] != "client_id_taken" {
			t.Fatalf("%s: error event %v, want client_id_taken", what, ev)
		}
	}
	refused(mallory, `{"message":"HIJACKED","username":"mallory","clientId":"`+id+`"}`, "another connection, other content")
	refused(mallory, original, "another connection, the same content")
	refused(mallory, `{"message":"HIJACKED","username":"mallory","clientId":"`+serverID+`"}`, "another connection, a server-made id")
	refused(bob, `{"message":"edited","username":"bob","clientId":"`+id+`"}`, "the same connection, other text")
	refused(bob, `{"message":"the original","username":"bobby","clientId":"`+id+`"}`, "the same connection, another username")

	// The sender's own retry is still one: acknowledged with the first
	// outcome, broadcast nothing.
	if ack := bob.ack(original); ack["ok"] != true || ack["id"] != id {
		t.Fatalf("bob's retry: ack = %v", ack)
	}

	// Nothing of the above reached anyone: the next message both see is
	// this one.
	if ack := bob.ack(`{"message":"after","username":"bob"}`); ack["ok"] != true {
		t.Fatalf("ack = %v", ack)
	}
	for name, c := range map[string]*sio{"bob": bob, "mallory": mallory} {
		for {
			m := c.message()
			if m.Message == "after" {
				break
			}
			if m.ID == id || m.ID == serverID || strings.Contains(m.Message, "HIJACKED") {
				t.Fatalf("%s received %+v after the first broadcasts", name, m)
			}
		}
	}
	var page struct{ Messages []wire }
	p.getJSON(t, "/api/messages?limit=10", &page)
	got := map[string]string{}
	for _, m := range page.Messages {
		got[m.ID] = m.Message + " by " + m.Username
	}
	if got[id] != "the original by bob" || got[serverID] != "no client id by bob" || len(page.Messages) != 3 {
		t.Fatalf("stored %v", got)
	}
	if n := p.metric(t, `chat_messages_rejected_total{reason="client_id_taken"}`); n != 5 {
		t.Fatalf("client_id_taken counted %v times, want 5", n)
	}
}
