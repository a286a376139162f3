// Package kafka is the chat pipeline through Apache Kafka (IBM/sarama): a
// producer that is the chat Log, and a consumer group that writes the topic
// into the chat Store in batches.
//
// # Producer (Log)
//
// The node that accepts a message produces it once: key = message id, value
// = the text in UTF-8 (what the original server's consumer reads), headers
// id, username and created-at (RFC 3339, milliseconds); a message of a
// room other than the global one also has chat-event: room-message and
// room, which consumers before rooms send to the dead-letter topic (so
// consumers are upgraded first). The producer is idempotent, waits for
// every in-sync replica (acks=all) and compresses.
//
// Guarantees: admission is bounded (Options.Buffer messages admitted and
// not yet acknowledged; past that Append refuses with chat.ErrUnavailable);
// a message's done callback fires exactly once, with nil when the broker
// acknowledged it. The Log owns the retry: a record sarama gives up on is
// kept, the producer is closed (collecting every acknowledgement still on
// its way) and created again, and the unacknowledged records are sent again
// in admission order, for as long as the broker is away. No admitted record
// is dropped. Within one producer the broker de-duplicates retries; a record
// sent again by a new producer after its acknowledgement was lost can be in
// the topic twice, with the same id: the consumer stores it once. Close
// waits for the acknowledgements until its context ends, then fails,
// counts and logs what is left.
//
// # Consumer
//
// The consumer group reads the topic from the group's committed offsets
// (from the oldest record for a new group), collects each partition's
// records into batches, writes each batch in one transaction through the
// Store (idempotent by id), and only then marks the batch's offsets. So a
// crash, a rebalance or a database outage can only make a batch be
// written again, which stores nothing twice. While the database is down it
// retries the same batch with exponential back-off and reads no further.
// A record that cannot be decoded, or a row the database refuses for its
// data, goes to the dead-letter topic with the reason in a header, and is
// counted; it never stalls its partition.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/IBM/sarama"
)

// Version is the protocol version the clients speak. Kafka 4 refuses the
// oldest protocol versions; 3.6 is new enough for it and old enough for the
// managed brokers the original ran on.
var Version = sarama.V3_6_0_0

// Connection is how to reach the cluster.
type Connection struct {
	// Brokers are the bootstrap addresses (KAFKA_BROKERS).
	Brokers []string
	// Username and Password turn SASL PLAIN on when Password is set
	// (KAFKA_USERNAME, default avnadmin; KAFKA_PASSWD).
	Username, Password string
	// CAFile turns TLS on, trusting the PEM certificates in it
	// (KAFKA_CA_FILE).
	CAFile string
	// ClientID names the client to the brokers (default "scalable-chat-go").
	ClientID string
}

// config returns a sarama configuration for c, or an error naming what is
// wrong (an unreadable CA file).
func (c Connection) config() (*sarama.Config, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("no Kafka brokers given")
	}
	cfg := sarama.NewConfig()
	cfg.Version = Version
	cfg.ClientID = c.ClientID
	if cfg.ClientID == "" {
		cfg.ClientID = "scalable-chat-go"
	}
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 2
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	if c.Password != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		cfg.Net.SASL.User = c.Username
		cfg.Net.SASL.Password = c.Password
		cfg.Net.SASL.Handshake = true
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the Kafka CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the Kafka CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return cfg, nil
}

// Describe returns what a log line may say about c: never the password.
func (c Connection) Describe() []any {
	return []any{"brokers", c.Brokers, "sasl", c.Password != "", "sasl_user", c.Username, "tls", c.CAFile != ""}
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidTopic reports whether name is a legal Kafka topic name.
func ValidTopic(name string) bool { return topicName.MatchString(name) && name != "." && name != ".." }

// EnsureTopics creates each topic that does not exist yet, with partitions
// partitions and the broker's default replication factor. A topic that
// exists is left as it is (whatever its partition count); a topic another
// node created meanwhile is fine.
func EnsureTopics(ctx context.Context, conn Connection, partitions int32, topics ...string) error {
	cfg, err := conn.config()
	if err != nil {
		return err
	}
	cfg.Admin.Timeout = 10 * time.Second
	type result struct{ err error }
	done := make(chan result, 1)
	// sarama's admin calls take no context: run them aside and stop
	// waiting when ctx ends (the client is closed either way).
	go func() {
		admin, err := sarama.NewClusterAdmin(conn.Brokers, cfg)
		if err != nil {
			done <- result{fmt.Errorf("connect to Kafka %v: %w", conn.Brokers, err)}
			return
		}
		defer admin.Close()
		existing, err := admin.ListTopics()
		if err != nil {
			done <- result{fmt.Errorf("list Kafka topics: %w", err)}
			return
		}
		for _, t := range topics {
			if _, ok := existing[t]; ok {
				continue
			}
			err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: -1}, false)
			if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				done <- result{fmt.Errorf("create Kafka topic %s with %d partitions: %w", t, partitions, err)}
				return
			}
		}
		done <- result{}
	}()
	select {
	case r := <-done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("ensure Kafka topics %v: %w", topics, ctx.Err())
	}
}

// health is an outage record: nil while things work, else the last error
// and since when.
type health struct {
	since time.Time
	err   error
}
