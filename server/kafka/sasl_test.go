package kafka_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/scalable-chat-go/server/kafka"
	"github.com/scalable-chat-go/server/testkit"
)

// TestSASLPlainOverTLS runs the pipeline against a broker that, like the
// original's on Aiven, takes only SASL PLAIN over TLS: a private
// single-node broker from the Kafka jars of scripts/services, with a CA and
// a certificate made here. A wrong password and an untrusted CA are refused,
// and say so without showing the password.
func TestSASLPlainOverTLS(t *testing.T) {
	t.Parallel()
	brokers(t) // the shared broker's jars are what this one runs
	const password = "Sasl-Test-Pw-42"
	b := startSASLBroker(t, password)

	conn := kafka.Connection{Brokers: []string{b.addr}, Username: "avnadmin", Password: password, CAFile: b.caFile}
	store := newStore(t)
	lo := logOptions(conn, "secure")
	lo.Partitions = 2
	l, err := kafka.NewLog(lo)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	}()
	co := consumerOptions(conn, "secure", "secure-group")
	co.Partitions = 2
	c, err := kafka.NewConsumer(store, co)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}()
	appendN(t, l, "secure", 20)
	rows := waitRows(t, store, 20, 30*time.Second)
	if len(rows) != 20 {
		t.Fatalf("%d rows, want 20", len(rows))
	}
	if err := l.Ping(context.Background()); err != nil {
		t.Fatalf("Ping over SASL/TLS: %v", err)
	}

	for _, tc := range []struct {
		name string
		conn kafka.Connection
		want string
	}{
		{"wrong password", kafka.Connection{Brokers: []string{b.addr}, Username: "avnadmin", Password: "Wrong-" + password, CAFile: b.caFile},
			"SASL Authentication failed"},
		{"untrusted CA", kafka.Connection{Brokers: []string{b.addr}, Username: "avnadmin", Password: password, CAFile: b.otherCAFile},
			"certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := kafka.NewLog(logOptions(tc.conn, "secure"))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = l.Close(ctx)
			}()
			var perr error
			deadline := time.Now().Add(20 * time.Second)
			for {
				perr = l.Ping(context.Background())
				if perr != nil && !strings.Contains(perr.Error(), "connecting") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Ping = %v, want a refusal", perr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !strings.Contains(perr.Error(), tc.want) {
				t.Fatalf("Ping = %v, want it to say %q", perr, tc.want)
			}
			if strings.Contains(perr.Error(), password) {
				t.Fatalf("the error shows the password: %v", perr)
			}
		})
	}
}

// saslBroker is a private Kafka broker with one SASL_SSL listener.
type saslBroker struct {
	addr, caFile, otherCAFile string
}

// startSASLBroker writes a CA, a server certificate for 127.0.0.1 and a
// KRaft configuration into a temporary directory, formats it, runs the
// broker with scripts/services kafka-tool (so from the same jars as the
// shared broker) in a process group of its own, and waits until a SASL/TLS
// client gets metadata. A broker that finds a port taken (another process
// was quicker between the pick and the bind) starts again on others, up to
// three times. The broker is killed when t ends.
func startSASLBroker(t *testing.T, password string) saslBroker {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert := newCA(t, "chat test CA")
	_, otherCA := newCA(t, "another CA")
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	var keystore bytes.Buffer
	_ = pem.Encode(&keystore, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	_ = pem.Encode(&keystore, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&keystore, &pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
	b := saslBroker{caFile: filepath.Join(dir, "ca.pem"), otherCAFile: filepath.Join(dir, "other-ca.pem")}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	write("other-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherCA.Raw}))
	write("server.pem", keystore.Bytes())
	jaas := fmt.Sprintf(`org.apache.kafka.common.security.plain.PlainLoginModule required username="avnadmin" password="%s" user_avnadmin="%s";`, password, password)
	cfg := sarama.NewConfig()
	cfg.Version = kafka.Version
	cfg.Net.SASL.Enable, cfg.Net.SASL.Mechanism = true, sarama.SASLTypePlaintext
	cfg.Net.SASL.User, cfg.Net.SASL.Password = "avnadmin", password
	cfg.Net.TLS.Enable = true
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cfg.Net.TLS.Config = tlsConfig(pool)
	for attempt := 1; ; attempt++ {
		b.addr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		controller := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
		data := filepath.Join(dir, fmt.Sprintf("data-%d", attempt))
		conf := filepath.Join(dir, fmt.Sprintf("server-%d.properties", attempt))
		write(filepath.Base(conf), []byte(saslBrokerConfig(b, controller, jaas, dir, data)))
		p := runSASLBroker(t, conf)
		err := awaitSASLBroker(p, b.addr, cfg)
		if err == nil {
			return b
		}
		if p.Done() && strings.Contains(p.Out.String(), "Address already in use") && attempt < 3 {
			t.Logf("attempt %d: a port of %s or %s was taken before the broker bound it; again on others", attempt, b.addr, controller)
			continue
		}
		t.Fatalf("the SASL broker on %s: %v:\n%s", b.addr, err, p.Out.String())
	}
}

// saslBrokerConfig is the broker's KRaft configuration: one SASL_SSL
// listener at b.addr, the controller at controller.
func saslBrokerConfig(b saslBroker, controller, jaas, dir, data string) string {
	return strings.Join([]string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@" + controller,
		"listeners=SASL_SSL://" + b.addr + ",CONTROLLER://" + controller,
		"advertised.listeners=SASL_SSL://" + b.addr,
		"controller.listener.names=CONTROLLER",
		"inter.broker.listener.name=SASL_SSL",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
		"sasl.enabled.mechanisms=PLAIN",
		"sasl.mechanism.inter.broker.protocol=PLAIN",
		"listener.name.sasl_ssl.plain.sasl.jaas.config=" + jaas,
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + filepath.Join(dir, "server.pem"),
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + b.caFile,
		"log.dirs=" + data,
		"num.partitions=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
	}, "\n") + "\n"
}

// runSASLBroker formats the storage of conf and starts the broker on it.
func runSASLBroker(t *testing.T, conf string) *testkit.Process {
	t.Helper()
	services := "../../scripts/services"
	// A cluster id that starts with '-' reads as an option to the tool
	// (1 in 64 random ids): draw again, as Kafka's own random-uuid does.
	id := "-"
	for strings.HasPrefix(id, "-") {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if out, err := exec.Command(services, "kafka-tool", "kafka.tools.StorageTool", "format",
		"-t", id, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("format the SASL broker's storage: %v\n%s", err, out)
	}
	return testkit.Start(t, "SASL broker", exec.Command(services, "kafka-tool", "kafka.Kafka", conf), nil)
}

// awaitSASLBroker waits up to 90 s until a SASL/TLS client gets metadata
// from addr; it gives up at once when the broker exits.
func awaitSASLBroker(p *testkit.Process, addr string, cfg *sarama.Config) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if p.Done() {
			return errors.New("the broker exited")
		}
		client, err := sarama.NewClient([]string{addr}, cfg)
		if err == nil {
			_, err = client.Topics()
			client.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no metadata within 90 s (last: %v)", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
