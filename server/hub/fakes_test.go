package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/chat/chattest"
	"github.com/scalable-chat-go/server/inmem"
)

// frame is what the test encoder makes: the event, readable.
type frame struct {
	name  string
	msg   chat.Message // a message event's
	high  string
	place string // an ordered hub's Place
	data  string // any other event's data, as JSON
}

type testEncoder struct{}

func (testEncoder) Message(m chat.Message, at Offset) (Frame, error) {
	return frame{name: chat.EventMessage, msg: m, high: at.High, place: at.Place}, nil
}

func (testEncoder) Event(name string, data any) (Frame, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return frame{name: name, data: string(b)}, nil
}

// testConn records what it is sent.
type testConn struct {
	id string

	mu     sync.Mutex
	name   string
	userID string
	since  time.Time
	frames []frame
	got    chan struct{}
}

func newConn(id, name string) *testConn {
	return &testConn{id: id, name: name, since: time.UnixMilli(1_700_000_000_000).UTC(), got: make(chan struct{}, 1)}
}

func (c *testConn) ID() string { return c.id }

func (c *testConn) Send(f Frame) {
	c.mu.Lock()
	c.frames = append(c.frames, f.(frame))
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
}

func (c *testConn) Identity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Identity{Name: c.name, UserID: c.userID, Since: c.since}
}

// take returns and forgets what c was sent.
func (c *testConn) take() []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.frames
	c.frames = nil
	return out
}

// named returns the frames of event name c was sent (and forgets all).
func (c *testConn) named(name string) []frame {
	var out []frame
	for _, f := range c.take() {
		if f.name == name {
			out = append(out, f)
		}
	}
	return out
}

// messages returns the ids of the messages c was sent, in order, and
// forgets everything it was sent.
func (c *testConn) messages() []string {
	var ids []string
	for _, f := range c.named(chat.EventMessage) {
		ids = append(ids, f.msg.ID)
	}
	return ids
}

// waitMessages waits until c has n message frames, and returns their ids.
func (c *testConn) waitMessages(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		k := 0
		for _, f := range c.frames {
			if f.name == chat.EventMessage {
				k++
			}
		}
		c.mu.Unlock()
		if k >= n {
			return c.messages()
		}
		select {
		case <-c.got:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: waited 5 s for %d messages, has %d", c.id, n, k)
		}
	}
}

// memStore is a Store in memory; Recent blocks while block is set.
type memStore struct {
	mu    sync.Mutex
	msgs  []chat.Message
	block chan struct{}
	// reading is told when Recent starts to wait.
	reading chan struct{}
}

func (s *memStore) add(ms ...chat.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, ms...)
}

func (s *memStore) SaveBatch(_ context.Context, b []chat.Message) ([]chat.Rejected, error) {
	s.add(b...)
	return nil, nil
}

func (s *memStore) SaveDeletions(context.Context, []chat.Deletion) error { return nil }

func (s *memStore) Recent(ctx context.Context, _ string, limit int, cur *chat.Cursor) ([]chat.Message, error) {
	s.mu.Lock()
	block, reading := s.block, s.reading
	s.mu.Unlock()
	if block != nil {
		if reading != nil {
			reading <- struct{}{}
		}
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	all := slices.Clone(s.msgs)
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b chat.Message) int {
		switch {
		case b.Before(a):
			return -1
		case a.Before(b):
			return 1
		}
		return 0
	})
	var out []chat.Message
	for _, m := range all {
		if cur != nil && !m.Before(chat.Message{CreatedAt: cur.CreatedAt, ID: cur.ID}) {
			continue
		}
		if len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *memStore) Find(_ context.Context, id string) (chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.ID == id {
			return m, nil
		}
	}
	return chat.Message{}, chat.ErrNotFound
}

func (s *memStore) Ping(context.Context) error { return nil }
func (s *memStore) Close() error               { return nil }

// node is a hub with its store and broker, for tests.
type node struct {
	*Hub
	store  *memStore
	broker *inmem.Broker
}

type nodeOptions struct {
	historyLimit, ring int
	presence           chat.Presence
	bus                *inmem.Bus
	rooms              []string // rooms that exist besides the global one
	// subs, when set, records the hub's Subscribe and Unsubscribe calls.
	subs *subscriptions
}

// subscriptions records a hub's room subscriptions, in order.
type subscriptions struct {
	mu    sync.Mutex
	calls []string
}

func (s *subscriptions) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// recordingBroker is a memory broker that records the subscriptions.
type recordingBroker struct {
	*inmem.Broker
	rec *subscriptions
}

func (b recordingBroker) Subscribe(room string) {
	b.rec.mu.Lock()
	b.rec.calls = append(b.rec.calls, "+"+room)
	b.rec.mu.Unlock()
	b.Broker.Subscribe(room)
}

func (b recordingBroker) Unsubscribe(room string) {
	b.rec.mu.Lock()
	b.rec.calls = append(b.rec.calls, "-"+room)
	b.rec.mu.Unlock()
	b.Broker.Unsubscribe(room)
}

// newNode starts a hub whose loop never ticks by itself (the tests call
// presenceTick and expireTyping).
func newNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	if o.ring == 0 {
		o.ring = 100
	}
	if o.bus == nil {
		o.bus = inmem.NewBus()
	}
	store := &memStore{}
	histories := map[string]*chat.History{chat.GlobalRoom: chat.NewHistory(store, o.ring)}
	for _, r := range o.rooms {
		histories[r] = chat.NewHistory(&memStore{}, o.ring)
	}
	b := o.bus.Broker(inmem.BrokerOptions{})
	var broker chat.Broker = b
	if o.subs != nil {
		broker = recordingBroker{Broker: b, rec: o.subs}
	}
	h, err := New(Options{
		Broker: broker, Presence: o.presence,
		History:           func(room string) *chat.History { return histories[room] },
		Encoder:           testEncoder{},
		HistoryLimit:      o.historyLimit,
		PresenceInterval:  time.Hour,
		PresenceListLimit: 100,
		TypingTimeout:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	b.RegisterEventHandler(h)
	if err := b.Run(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = b.Close(context.Background())
	})
	return &node{Hub: h, store: store, broker: b}
}

// msg is a test message: id m-NNN at NNN ms.
func msg(i int) chat.Message {
	return chattest.Msg(fmt.Sprintf("m-%03d", i), fmt.Sprint("text ", i), i)
}

func ids(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("m-%03d", i))
	}
	return out
}
