package engine

import "sync"

// workerPool runs sessions' inboxes on a fixed number of goroutines. A
// session is in the run queue at most once (Session.scheduled), and only
// one worker runs it at a time, so each session's messages are handled in
// order; a session with much to do yields after maxBatch items.
type workerPool struct {
	mu    sync.Mutex
	cond  *sync.Cond
	queue []*Session
	head  int
	quit  bool
	wg    sync.WaitGroup
}

func newWorkerPool(n int) *workerPool {
	p := &workerPool{}
	p.cond = sync.NewCond(&p.mu)
	for range max(n, 1) {
		p.wg.Add(1)
		go p.run()
	}
	return p
}

func (p *workerPool) schedule(s *Session) {
	p.mu.Lock()
	p.queue = append(p.queue, s)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *workerPool) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for p.head == len(p.queue) && !p.quit {
			p.cond.Wait()
		}
		if p.head == len(p.queue) {
			p.mu.Unlock()
			return
		}
		s := p.queue[p.head]
		p.queue[p.head] = nil
		p.head++
		if p.head == len(p.queue) {
			p.head = 0
			p.queue = p.queue[:0]
		} else if p.head > 1024 && p.head*2 > len(p.queue) {
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue = p.queue[:n]
			p.head = 0
		}
		p.mu.Unlock()
		s.run()
	}
}

// stop lets the workers finish the queue, then ends them.
func (p *workerPool) stop() {
	p.mu.Lock()
	p.quit = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}
