package chat

// RecentIDs remembers the latest ids added to it, at most its capacity:
// adding one more forgets the oldest. It is not safe for concurrent use:
// its owner locks.
type RecentIDs struct {
	set   map[string]struct{}
	order []string // circular
	at    int
}

// NewRecentIDs returns an empty set that keeps capacity ids (at least 1).
func NewRecentIDs(capacity int) *RecentIDs {
	return &RecentIDs{set: make(map[string]struct{}), order: make([]string, max(capacity, 1))}
}

// Add remembers id (once, however often it is added).
func (s *RecentIDs) Add(id string) {
	if _, ok := s.set[id]; ok {
		return
	}
	if old := s.order[s.at]; old != "" {
		delete(s.set, old)
	}
	s.order[s.at] = id
	s.at = (s.at + 1) % len(s.order)
	s.set[id] = struct{}{}
}

// Has reports whether id is remembered.
func (s *RecentIDs) Has(id string) bool {
	_, ok := s.set[id]
	return ok
}
