package chat

// RecentIDs remembers the latest ids added to it, at most its capacity:
// adding one more forgets the oldest. It is not safe for concurrent use:
// its owner locks.
type RecentIDs struct {
	set      map[string]struct{}
	order    []string // circular once full; until then it grows
	capacity int
	at       int // the oldest, once full
}

// NewRecentIDs returns an empty set that keeps capacity ids (at least 1).
func NewRecentIDs(capacity int) *RecentIDs {
	return &RecentIDs{set: make(map[string]struct{}), capacity: max(capacity, 1)}
}

// Add remembers id (once, however often it is added).
func (s *RecentIDs) Add(id string) {
	if _, ok := s.set[id]; ok {
		return
	}
	s.set[id] = struct{}{}
	if len(s.order) < s.capacity {
		s.order = append(s.order, id)
		return
	}
	delete(s.set, s.order[s.at])
	s.order[s.at] = id
	s.at = (s.at + 1) % s.capacity
}

// Has reports whether id is remembered.
func (s *RecentIDs) Has(id string) bool {
	_, ok := s.set[id]
	return ok
}
