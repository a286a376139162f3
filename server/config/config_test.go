package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := FromLookup(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "0.0.0.0:8000" || c.PingInterval != 25*time.Second || c.PingTimeout != 20*time.Second ||
		c.MaxMessageLength != 2000 || c.MaxUsernameLength != 64 || c.MaxHTTPBufferSize != 64<<10 ||
		c.RateLimitPerSec != 20 || c.RateLimitBurst != 40 || c.HistoryLimit != 50 ||
		c.RecoveryWindow != 2*time.Minute || c.PresenceInterval != time.Second || c.DataDir != "./data" ||
		c.ShutdownTimeout != 15*time.Second || len(c.CORSOrigins) != 1 || c.CORSOrigins[0] != "*" || !c.Migrate ||
		c.MigrateLockTimeout != 10*time.Second || c.ConnectTimeout != 45*time.Second || c.HTTPIdleTimeout != 60*time.Second ||
		c.HTTPBodyTimeout != 10*time.Second || c.HTTPMaxConnsPerIP != 2*256+64 ||
		c.PresenceListLimit != 1000 || c.TypingRatePerSec != 5 || c.TypingTimeout != 5*time.Second ||
		c.AuthMaxKeysPerToken != 4 || c.AuthGuestMaxLifetime != 24*time.Hour || c.AuthGuestSignInsPerMin != 20 || c.AuthGuestNamesPerIP != 20 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestHTTPSettings(t *testing.T) {
	tests := []struct {
		env        map[string]string
		idle, body time.Duration
		connsPerIP int
	}{
		{map[string]string{"HTTP_IDLE_TIMEOUT": "5s", "HTTP_BODY_TIMEOUT": "1500", "HTTP_MAX_CONNS_PER_IP": "300"}, 5 * time.Second, 1500 * time.Millisecond, 300},
		{map[string]string{"MAX_CONNECTIONS_PER_IP": "10"}, time.Minute, 10 * time.Second, 84},
		{map[string]string{"MAX_CONNECTIONS_PER_IP": "0"}, time.Minute, 10 * time.Second, 0},
		{map[string]string{"MAX_CONNECTIONS_PER_IP": "0", "HTTP_MAX_CONNS_PER_IP": "50"}, time.Minute, 10 * time.Second, 50},
		{map[string]string{"MAX_CONNECTIONS_PER_IP": "10", "HTTP_MAX_CONNS_PER_IP": "0"}, time.Minute, 10 * time.Second, 0},
	}
	for _, tt := range tests {
		c, err := FromLookup(lookup(tt.env))
		if err != nil {
			t.Fatalf("%v: %v", tt.env, err)
		}
		if c.HTTPIdleTimeout != tt.idle || c.HTTPBodyTimeout != tt.body || c.HTTPMaxConnsPerIP != tt.connsPerIP {
			t.Errorf("%v: idle %v, body %v, conns per IP %d; want %v, %v, %d", tt.env,
				c.HTTPIdleTimeout, c.HTTPBodyTimeout, c.HTTPMaxConnsPerIP, tt.idle, tt.body, tt.connsPerIP)
		}
	}
}

func TestBadHTTPSettingsAreReportedByName(t *testing.T) {
	tests := map[string]map[string]string{
		"HTTP_IDLE_TIMEOUT=":            {"HTTP_IDLE_TIMEOUT": "0"},
		"HTTP_BODY_TIMEOUT=":            {"HTTP_BODY_TIMEOUT": "forever"},
		"HTTP_MAX_CONNS_PER_IP=":        {"HTTP_MAX_CONNS_PER_IP": "-1"},
		"HTTP_MAX_CONNS_PER_IP=\"100\"": {"HTTP_MAX_CONNS_PER_IP": "100", "MAX_CONNECTIONS_PER_IP": "256"},
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := FromLookup(lookup(env))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
		})
	}
}

func TestValues(t *testing.T) {
	c, err := FromLookup(lookup(map[string]string{
		"PORT": "9000", "PING_INTERVAL": "1500", "PING_TIMEOUT": "2s", "CORS_ORIGINS": "https://a.example, https://b.example",
		"TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "HISTORY_LIMIT": "0", "CONNECTION_RECOVERY_WINDOW": "0",
		"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug", "MIGRATE": "off", "KAFKA_BROKERS": "a:9092,b:9092",
		"MIGRATE_LOCK_TIMEOUT": "1m", "REDIS_SUBSCRIPTION_MODE": "Static",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisSubscriptionMode != "static" {
		t.Fatalf("REDIS_SUBSCRIPTION_MODE=Static read as %q", c.RedisSubscriptionMode)
	}
	if c.Port != 9000 || c.PingInterval != 1500*time.Millisecond || c.PingTimeout != 2*time.Second ||
		len(c.CORSOrigins) != 2 || c.CORSOrigins[1] != "https://b.example" || len(c.TrustedProxies) != 2 ||
		c.TrustedProxies[1].String() != "127.0.0.1/32" || c.HistoryLimit != 0 || c.RecoveryWindow != 0 ||
		c.LogFormat != "json" || c.Migrate || len(c.KafkaBrokers) != 2 || c.MigrateLockTimeout != time.Minute {
		t.Fatalf("parsed %+v", c)
	}
}

func TestBadValuesAreAllReportedByName(t *testing.T) {
	_, err := FromLookup(lookup(map[string]string{
		"PORT": "eighty", "PING_INTERVAL": "soon", "MAX_MESSAGE_LENGTH": "0", "TRUSTED_PROXIES": "not-an-ip",
		"LOG_FORMAT": "xml", "MIGRATE": "maybe", "HISTORY_LIMIT": "100", "HISTORY_RING_SIZE": "10",
		"MIGRATE_LOCK_TIMEOUT": "10us", "REDIS_SUBSCRIPTION_MODE": "dynamic-private",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, name := range []string{"PORT=", "PING_INTERVAL=", "MAX_MESSAGE_LENGTH=", "TRUSTED_PROXIES=", "LOG_FORMAT=", "MIGRATE=", "HISTORY_RING_SIZE=", "MIGRATE_LOCK_TIMEOUT=", "REDIS_SUBSCRIPTION_MODE="} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestKafkaSettings(t *testing.T) {
	c, err := FromLookup(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaTopic != "MESSAGES" || c.KafkaPartitions != 6 || c.KafkaDLQTopic != "MESSAGES.DLQ" || c.KafkaGroup != "default" ||
		!c.KafkaConsumer || c.KafkaUsername != "avnadmin" || c.KafkaCompression != "gzip" || c.KafkaRetryMax != 5*time.Second ||
		c.ProducerBuffer != 100_000 {
		t.Fatalf("kafka defaults: %+v", c)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = FromLookup(lookup(map[string]string{
		"KAFKA_BROKERS": "k1:9092", "KAFKA_TOPIC": "chat.messages", "KAFKA_PARTITIONS": "12", "KAFKA_DLQ_TOPIC": "chat.dlq",
		"KAFKA_GROUP": "go-nodes", "KAFKA_CONSUMER": "off", "KAFKA_USERNAME": "u", "KAFKA_PASSWD": "p", "KAFKA_CA_FILE": ca,
		"KAFKA_COMPRESSION": "zstd", "KAFKA_RETRY_MAX": "2s", "PRODUCER_BUFFER": "500",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaTopic != "chat.messages" || c.KafkaPartitions != 12 || c.KafkaDLQTopic != "chat.dlq" || c.KafkaGroup != "go-nodes" ||
		c.KafkaConsumer || c.KafkaUsername != "u" || c.KafkaPasswd != "p" || c.KafkaCAFile != ca || c.KafkaCompression != "zstd" ||
		c.KafkaRetryMax != 2*time.Second || c.ProducerBuffer != 500 {
		t.Fatalf("kafka values: %+v", c)
	}
}

func TestKafkaDLQTopicFollowsTheTopic(t *testing.T) {
	c, err := FromLookup(lookup(map[string]string{"KAFKA_TOPIC": "chat"}))
	if err != nil || c.KafkaDLQTopic != "chat.DLQ" {
		t.Fatalf("KAFKA_DLQ_TOPIC = %q (%v), want chat.DLQ", c.KafkaDLQTopic, err)
	}
}

func TestBadKafkaSettingsAreReportedByName(t *testing.T) {
	tests := map[string]map[string]string{
		"KAFKA_TOPIC=":       {"KAFKA_TOPIC": "has space"},
		"KAFKA_PARTITIONS=":  {"KAFKA_PARTITIONS": "0"},
		"KAFKA_DLQ_TOPIC=":   {"KAFKA_DLQ_TOPIC": "MESSAGES"},
		"KAFKA_CONSUMER=":    {"KAFKA_CONSUMER": "sometimes"},
		"KAFKA_CA_FILE=":     {"KAFKA_CA_FILE": "/no/such/ca.pem"},
		"KAFKA_COMPRESSION=": {"KAFKA_COMPRESSION": "brotli"},
		"KAFKA_RETRY_MAX=":   {"KAFKA_RETRY_MAX": "never"},
		"PRODUCER_BUFFER=":   {"PRODUCER_BUFFER": "0"},
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := FromLookup(lookup(env))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
		})
	}
}

func TestAuthSettings(t *testing.T) {
	secret := strings.Repeat("k", 32)
	for _, tt := range []struct {
		env     map[string]string
		mode    string
		wantErr string
	}{
		{map[string]string{}, "off", ""},
		{map[string]string{"AUTH_JWT_SECRET": secret}, "required", ""},
		{map[string]string{"AUTH_JWKS_URL": "https://id.example/.well-known/jwks.json", "AUTH_MODE": "optional"}, "optional", ""},
		{map[string]string{"AUTH_JWT_SECRET": secret, "AUTH_MODE": "off"}, "off", ""},
		{map[string]string{"AUTH_MODE": "required"}, "", "AUTH_MODE"},
		{map[string]string{"AUTH_JWT_SECRET": "short"}, "", "AUTH_JWT_SECRET=\"(hidden)\""},
		{map[string]string{"AUTH_JWKS_URL": "file:///etc/keys"}, "", "AUTH_JWKS_URL"},
		{map[string]string{"AUTH_GUEST": "on"}, "", "AUTH_GUEST"},
		{map[string]string{"ADMIN_TOKEN": "short"}, "", "ADMIN_TOKEN"},
		{map[string]string{"METRICS_ADDR": "9090"}, "", "METRICS_ADDR"},
		{map[string]string{"AUTH_CLOCK_SKEW": "1h", "AUTH_JWT_SECRET": secret}, "", "AUTH_CLOCK_SKEW"},
		{map[string]string{"AUTH_MAX_KEYS_PER_TOKEN": "0", "AUTH_JWT_SECRET": secret}, "", "AUTH_MAX_KEYS_PER_TOKEN"},
		{map[string]string{"AUTH_GUEST_TTL": "2h", "AUTH_GUEST_MAX_LIFETIME": "1h", "AUTH_JWT_SECRET": secret}, "", "AUTH_GUEST_MAX_LIFETIME"},
		{map[string]string{"AUTH_GUEST_NAMES_PER_IP": "-1", "AUTH_JWT_SECRET": secret}, "", "AUTH_GUEST_NAMES_PER_IP"},
		{map[string]string{"AUTH_GUEST_SIGNINS_PER_MIN": "many", "AUTH_JWT_SECRET": secret}, "", "AUTH_GUEST_SIGNINS_PER_MIN"},
	} {
		c, err := FromLookup(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want one naming %s", tt.env, err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), secret)) {
				t.Errorf("%v: the error shows a secret: %v", tt.env, err)
			}
			continue
		}
		if err != nil || c.AuthMode != tt.mode {
			t.Errorf("%v: mode %q err %v, want %q", tt.env, c.AuthMode, err, tt.mode)
		}
	}
}
