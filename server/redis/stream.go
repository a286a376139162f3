package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	sioadapter "github.com/zishang520/socket.io/adapters/adapter/v3"
	sioredis "github.com/zishang520/socket.io/adapters/redis/v3"
	streams "github.com/zishang520/socket.io/adapters/redis/v3/adapter"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/scalable-chat-go/server/chat"
)

// The stream, in streams mode.
//
// Every node of the cluster appends its broadcasts to one Redis stream
// (the library's streams adapter: XADD), and reads the whole stream. The
// library's own reader starts at the stream's end ("$"), skips the node's
// own entries, and tells nobody where an entry stands. The broker reads
// the stream itself instead (streamReader), so that it can be an ordered
// broker (chat.OrderedBroker):
//   - every entry reaches the handlers with its position (the entry's id),
//     in the stream's order;
//   - the node's own message entries come back to it (Event.Own), so that
//     its hub delivers its own messages in the stream's order too;
//   - a node that starts reads the last entries already there first (a
//     seed of Seed entries), so that clients that come back to it find
//     what they missed while it was down.
//
// Entries still go through the library's adapter (OnRawMessage), which
// decodes them as Node's streams adapter wrote them and delivers them to
// the sink, as in the sharded mode: the wire format does not change.

// echoUID replaces the node's own uid in an entry read back, so that the
// library's adapter does not drop it as its own.
const echoUID = "scalable-chat-go:echo"

// streamsBuilder builds the library's streams adapters without their
// reader (NewRedisStreamsAdapter starts none; the builder would).
type streamsBuilder struct {
	lib  *sioredis.RedisClient
	opts streams.RedisStreamsAdapterOptionsInterface

	mu       sync.Mutex
	adapters map[string]streams.RedisStreamsAdapter // by namespace
}

// New builds the streams adapter of nsp.
func (s *streamsBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := streams.NewRedisStreamsAdapter(nsp, s.lib, s.opts)
	name := nsp.Name()
	s.mu.Lock()
	if s.adapters == nil {
		s.adapters = make(map[string]streams.RedisStreamsAdapter)
	}
	s.adapters[name] = a
	s.mu.Unlock()
	a.Cleanup(func() {
		s.mu.Lock()
		if s.adapters[name] == a {
			delete(s.adapters, name)
		}
		s.mu.Unlock()
	})
	return a
}

func (s *streamsBuilder) adapter(nsp string) streams.RedisStreamsAdapter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adapters[nsp]
}

// entryInfo is the stream entry being handed to the adapter: its position,
// and whether this node wrote it.
type entryInfo struct {
	pos chat.Position
	own bool
}

// streamReader reads the stream for one broker.
type streamReader struct {
	b      *Broker
	s      *streamsBuilder
	client goredis.UniversalClient
	stream string
	seed   int64
	count  int64
	block  time.Duration

	// cur is the entry being handed to the adapter: the sink's listener
	// runs within that call (onRemote reads it).
	cur atomic.Pointer[entryInfo]

	floorMu sync.Mutex
	floor   chat.Position
	started bool
}

// floorNow returns where the node's reading of the stream is complete.
func (r *streamReader) floorNow() (chat.Position, bool) {
	r.floorMu.Lock()
	defer r.floorMu.Unlock()
	return r.floor, r.started
}

// begin reads where the seed starts: after the entry before the last Seed
// ones, whose position is the floor; or, when the stream holds no more,
// from its start, and the floor is its oldest entry (the stream may have
// been trimmed, or made anew by a Redis that restarted empty: what was
// before it is not known), or now for an empty stream. It returns the id
// to read after.
func (r *streamReader) begin(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.b.c.o.RequestTimeout)
	defer cancel()
	last, err := r.client.XRevRangeN(ctx, r.stream, "+", "-", r.seed+1).Result()
	if err != nil {
		return "", err
	}
	start, floor := "0-0", chat.Position{Ms: uint64(time.Now().UnixMilli())}
	if n := len(last); n > 0 {
		if int64(n) <= r.seed {
			floor, _ = chat.ParsePosition(last[n-1].ID)
		} else {
			start = last[n-1].ID
			floor, _ = chat.ParsePosition(start)
		}
	}
	r.floorMu.Lock()
	r.floor, r.started = floor, true
	r.floorMu.Unlock()
	return start, nil
}

// run reads the stream until ctx ends. seeded is closed once the seed is
// read, or could not be (Redis is down: the node starts all the same).
// A failed read is tried again after a back-off of up to BackoffMax: 2 s
// on one server, 150 ms on a Redis Cluster, where the failure also makes
// the client read the slots again (reportError), so the reader follows the
// stream's new master within a few tenths of a second of its election.
func (r *streamReader) run(ctx context.Context, seeded chan<- struct{}) {
	offset := ""
	backoff := 100 * time.Millisecond
	signal := func() {
		if seeded != nil {
			close(seeded)
			seeded = nil
		}
	}
	defer signal()
	cut := false // reading failed since the last entry read
	for ctx.Err() == nil {
		if offset == "" {
			start, err := r.begin(ctx)
			if err != nil {
				r.b.c.reportError(err)
				signal() // the node starts all the same; it resumes no one until it reads
				if !r.pause(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, r.b.c.o.BackoffMax)
				continue
			}
			offset, backoff = start, 100*time.Millisecond
		}
		block := r.block
		if seeded != nil {
			block = -1 // the seed: what is there now, without waiting
		}
		res, err := r.client.XRead(ctx, &goredis.XReadArgs{
			Streams: []string{r.stream, offset},
			Count:   r.count,
			Block:   block,
		}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			if ctx.Err() != nil {
				continue
			}
			r.b.c.reportError(err)
			cut = true
			if !r.pause(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, r.b.c.o.BackoffMax)
			continue
		}
		if cut {
			cut = false
			r.checkContinuity(ctx, offset)
		}
		if err != nil { // goredis.Nil: nothing new
			if seeded != nil {
				signal() // nothing more to read: the seed is in
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for _, s := range res {
			for _, entry := range s.Messages {
				r.dispatch(entry)
				offset = entry.ID
			}
		}
		if seeded != nil && int64(len(res)) > 0 && int64(len(res[0].Messages)) < r.count {
			signal() // read up to the end
		}
	}
}

// checkContinuity looks, once Redis answers again after a failure,
// whether the stream still holds what follows offset, the last entry this
// node read. It does not when Redis restarted without persistence (the
// stream is new, or gone) or trimmed entries this node had not read: what
// was published then may never reach this node's clients. That is
// counted (chat_stream_resets_total) and logged, never silent.
func (r *streamReader) checkContinuity(ctx context.Context, offset string) {
	last, ok := chat.ParsePosition(offset)
	if !ok || last.IsZero() {
		return // nothing read yet: nothing to lose
	}
	ctx, cancel := context.WithTimeout(ctx, r.b.c.o.RequestTimeout)
	defer cancel()
	first, err := r.client.XRangeN(ctx, r.stream, "-", "+", 1).Result()
	if err != nil {
		r.b.c.reportError(err)
		return
	}
	if len(first) > 0 {
		if p, ok := chat.ParsePosition(first[0].ID); ok && !last.Before(p) {
			return // it holds the last entry read, or older: nothing lost
		}
	}
	r.b.c.m.streamResets.Inc()
	oldest := "none"
	if len(first) > 0 {
		oldest = first[0].ID
	}
	r.b.log.Error("the stream no longer holds what follows the last entry this node read (Redis restarted without "+
		"persistence, or trimmed what this node had not read): messages published meanwhile may not reach its clients",
		"last_read", offset, "oldest_in_stream", oldest, "fix", "run Redis with appendonly yes")
}

// dispatch hands one entry to its namespace's adapter: the node's own only
// when it may carry a message, a broadcast of namespace "/" (the rest was
// delivered here already).
func (r *streamReader) dispatch(entry goredis.XMessage) {
	raw := streams.RawClusterMessage(entry.Values)
	a := r.s.adapter(raw.Nsp())
	if a == nil {
		return
	}
	pos, ok := chat.ParsePosition(entry.ID)
	if !ok {
		return
	}
	own := raw.Uid() == string(a.Uid())
	if own {
		// Only the chat's broadcasts may carry a message (not the Admin
		// UI's namespace, nor requests).
		if raw.Type() != broadcastType || raw.Nsp() != "/" {
			return
		}
		echo := make(streams.RawClusterMessage, len(raw))
		for k, v := range raw {
			echo[k] = v
		}
		echo["uid"] = echoUID
		raw = echo
	}
	r.cur.Store(&entryInfo{pos: pos, own: own})
	defer r.cur.Store(nil)
	r.b.guard("stream entry", func() {
		if err := a.OnRawMessage(raw, entry.ID); err != nil {
			r.b.c.reportError(err)
		}
	})
}

// streamsCount counts the servers of the streams mode on a Redis Cluster.
// The library's adapter asks PUBSUB NUMSUB of its namespace's channel, a
// command of no key, which the cluster client sends to any master; but a
// master counts only its own subscribers, and the adapters subscribe on
// the master of the channel's slot (go-redis's cluster Pub/Sub dials the
// master of its first channel). So the count is asked there.
type streamsCount struct {
	publisher
	c       *Cluster
	channel string
}

// ServerCount is how many servers subscribe to the namespace's channel;
// 0 when Redis does not answer.
func (s streamsCount) ServerCount() int64 { return s.c.subscribers(s.channel, false) }

// broadcastType is the type of a BROADCAST cluster message in a stream
// entry.
var broadcastType = strconv.Itoa(int(sioadapter.BROADCAST))

// pause waits d, or until ctx ends (then false).
func (r *streamReader) pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
