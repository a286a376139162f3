package engine

import (
	"sync"
	"time"
)

// Timer kinds of the wheel.
const (
	timerHeartbeat uint8 = iota
	timerConnect
)

// wheel is a hashed timing wheel: every session's heartbeat and connect
// timeout in one goroutine, with one slot per tick instead of a runtime
// timer per session. An entry is never removed: when it fires, it is
// ignored unless its generation is still the session's (a pong moves the
// heartbeat on by adding a new entry). Timers fire up to one tick late.
type wheel struct {
	e     *Engine
	tick  time.Duration
	mu    sync.Mutex
	slots [][]wheelEntry
	pos   int
	quit  chan struct{}
	done  chan struct{}
}

type wheelEntry struct {
	s      *Session
	gen    uint32
	kind   uint8
	rounds int
}

// maxSlots bounds the wheel; longer timers go round it more than once.
const maxSlots = 4096

func newWheel(e *Engine, tick, longest time.Duration) *wheel {
	n := min(int(longest/tick)+2, maxSlots)
	w := &wheel{e: e, tick: tick, slots: make([][]wheelEntry, n), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// add arms a timer of kind for s, generation gen, firing after d.
func (w *wheel) add(s *Session, gen uint32, kind uint8, d time.Duration) {
	ticks := max(int((d+w.tick-1)/w.tick), 1)
	w.mu.Lock()
	n := len(w.slots)
	slot := (w.pos + ticks) % n
	w.slots[slot] = append(w.slots[slot], wheelEntry{s: s, gen: gen, kind: kind, rounds: (ticks - 1) / n})
	w.mu.Unlock()
}

func (w *wheel) run() {
	defer close(w.done)
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var due, keep []wheelEntry
	sweep := time.Now()
	for {
		select {
		case <-w.quit:
			return
		case now := <-t.C:
			w.mu.Lock()
			w.pos = (w.pos + 1) % len(w.slots)
			due, w.slots[w.pos] = w.slots[w.pos], due[:0]
			w.mu.Unlock()
			keep = keep[:0]
			for i, en := range due {
				due[i] = wheelEntry{}
				if en.rounds > 0 {
					en.rounds--
					keep = append(keep, en)
					continue
				}
				w.fire(en)
			}
			if len(keep) > 0 {
				w.mu.Lock()
				w.slots[w.pos] = append(w.slots[w.pos], keep...)
				w.mu.Unlock()
				clear(keep)
			}
			if now.Sub(sweep) >= time.Second {
				sweep = now
				w.e.sweepKept(now)
			}
		}
	}
}

func (w *wheel) fire(en wheelEntry) {
	w.e.Guard("timer", func() {
		switch en.kind {
		case timerHeartbeat:
			en.s.heartbeat(en.gen)
		case timerConnect:
			en.s.connectTimeout()
		}
	})
}

func (w *wheel) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}
