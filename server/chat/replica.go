package chat

// Replica keeps a node's own store in step with the cluster when the nodes
// share no database (REDIS_URL without DATABASE_URL): it receives what the
// other nodes broadcast, through the Broker, and appends their messages
// and tombstones to this node's Log. The Store is idempotent by id, so a
// publication that arrives twice is stored once. What this node missed
// while its broker was cut off is not replayed: a replica is best effort,
// and the README says so.
type Replica struct{ log Log }

var _ BrokerEventHandler = (*Replica)(nil)

// NewReplica returns the replica that appends to log.
func NewReplica(log Log) *Replica { return &Replica{log: log} }

// HandlePublication stores another node's message or deletion.
func (r *Replica) HandlePublication(_ string, e Event) {
	switch {
	case e.IsMessage():
		_ = r.log.Append(e.Message, func(error) {})
	case e.Deletion != nil:
		_ = r.log.Delete(*e.Deletion, func(error) {})
	}
}

// HandleUserEvent ignores events addressed to users: nothing of them is
// stored.
func (r *Replica) HandleUserEvent(string, Event) {}
