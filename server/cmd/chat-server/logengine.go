package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/batchwriter"
	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/directlog"
	"github.com/scalable-chat-go/server/httpapi"
	"github.com/scalable-chat-go/server/kafka"
)

// logEngine is the Log main chose, with what /readyz checks and what runs
// beside it.
type logEngine struct {
	chat.Log
	// kind names the engine in the start-up log: direct or kafka.
	kind   string
	checks []httpapi.Check
	// stop shuts down what runs beside the Log (the consumer group), after
	// the Log is closed.
	stop func(ctx context.Context) error
}

// batching is how either Log makes and retries its batches.
func batching(cfg config.Config) batchwriter.Batching {
	return batchwriter.Batching{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, RetryMax: cfg.DBRetryMax}
}

// newLogEngine returns the Kafka producer (and, unless KAFKA_CONSUMER=off,
// the consumer group writing the topic into store) when KAFKA_BROKERS is
// set, else the direct batch writer to store.
func newLogEngine(cfg config.Config, store chat.Store, reg prometheus.Registerer, logger *slog.Logger) (*logEngine, error) {
	if len(cfg.KafkaBrokers) == 0 {
		wlog, err := directlog.New(store, directlog.Options{
			Buffer:     cfg.WriteBuffer,
			Batching:   batching(cfg),
			Logger:     logger.With("component", "writer"),
			Registerer: reg,
		})
		if err != nil {
			return nil, err
		}
		return &logEngine{
			Log:  wlog,
			kind: "direct",
			checks: []httpapi.Check{{Name: "store", Fn: func(ctx context.Context) error {
				if err := wlog.Health(); err != nil {
					return err
				}
				return store.Ping(ctx)
			}}},
			stop: func(context.Context) error { return nil },
		}, nil
	}

	conn := kafka.Connection{
		Brokers:  cfg.KafkaBrokers,
		Username: cfg.KafkaUsername,
		Password: cfg.KafkaPasswd,
		CAFile:   cfg.KafkaCAFile,
	}
	klog := logger.With("component", "kafka")
	if conn.Password != "" && conn.CAFile == "" {
		klog.Warn("KAFKA_PASSWD is set without TLS (no KAFKA_CA_FILE, and no " + config.DefaultKafkaCAFile + "): the SASL password travels in clear text")
	}
	producer, err := kafka.NewLog(kafka.LogOptions{
		Connection:  conn,
		Topic:       cfg.KafkaTopic,
		Partitions:  int32(cfg.KafkaPartitions),
		Buffer:      cfg.ProducerBuffer,
		Compression: cfg.KafkaCompression,
		RetryMax:    cfg.KafkaRetryMax,
		Logger:      klog.With("part", "producer"),
		Registerer:  reg,
	})
	if err != nil {
		return nil, err
	}
	var consumer *kafka.Consumer
	if cfg.KafkaConsumer {
		hook, err := afterCommitHook(klog)
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = producer.Close(ctx)
			return nil, err
		}
		consumer, err = kafka.NewConsumer(store, kafka.ConsumerOptions{
			Connection:     conn,
			Topic:          cfg.KafkaTopic,
			DLQTopic:       cfg.KafkaDLQTopic,
			Partitions:     int32(cfg.KafkaPartitions),
			Group:          cfg.KafkaGroup,
			Batching:       batching(cfg),
			BrokerRetryMax: cfg.KafkaRetryMax,
			AfterCommit:    hook,
			Logger:         klog.With("part", "consumer"),
			Registerer:     reg,
		})
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = producer.Close(ctx)
			return nil, err
		}
	}
	klog.Info("Kafka log", append(conn.Describe(), "topic", cfg.KafkaTopic, "dlq", cfg.KafkaDLQTopic,
		"group", cfg.KafkaGroup, "consumer", consumer != nil)...)
	e := &logEngine{
		Log:  producer,
		kind: "kafka",
		checks: []httpapi.Check{
			{Name: "kafka", Fn: func(ctx context.Context) error {
				if err := producer.Ping(ctx); err != nil {
					return err
				}
				if consumer != nil {
					return consumer.KafkaHealth()
				}
				return nil
			}},
			{Name: "database", Fn: func(ctx context.Context) error {
				if consumer != nil {
					if err := consumer.StoreHealth(); err != nil {
						return err
					}
				}
				return store.Ping(ctx)
			}},
		},
		stop: func(context.Context) error { return nil },
	}
	if consumer != nil {
		e.stop = consumer.Close
	}
	return e, nil
}
