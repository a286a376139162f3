package kafka_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scalable-chat-go/server/kafka"
)

// The sizes, names and longest back-offs are the configuration's to
// decide: NewLog and NewConsumer refuse options without them, naming the
// setting, rather than pick their own.
func TestOptionsAreExplicit(t *testing.T) {
	conn := kafka.Connection{Brokers: []string{"127.0.0.1:1"}}
	_, err := kafka.NewLog(kafka.LogOptions{Connection: conn})
	for _, want := range []string{"KAFKA_TOPIC", "KAFKA_PARTITIONS", "PRODUCER_BUFFER", "KAFKA_COMPRESSION", "KAFKA_RETRY_MAX"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewLog with no options = %v, want it to name %s", err, want)
		}
	}
	_, err = kafka.NewConsumer(nil, kafka.ConsumerOptions{Connection: conn})
	for _, want := range []string{"KAFKA_TOPIC", "KAFKA_DLQ_TOPIC", "KAFKA_PARTITIONS", "KAFKA_GROUP", "BATCH_SIZE", "DB_RETRY_MAX", "KAFKA_RETRY_MAX"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewConsumer with no options = %v, want it to name %s", err, want)
		}
	}
	l, err := kafka.NewLog(logOptions(conn, "fine"))
	if err != nil {
		t.Fatalf("NewLog with every option = %v", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("Close with nothing admitted = %v", err)
	}
}
