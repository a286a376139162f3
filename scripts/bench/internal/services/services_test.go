package services

import (
	"bufio"
	"strconv"
	"strings"
	"testing"
)

func TestLoopback(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"127.0.0.1", true}, {"127.3.2.1", true}, {"::1", true}, {"localhost", true},
		{"10.0.0.1", false}, {"redis.example.org", false}, {"", false}, {"0.0.0.0", false},
	}
	for _, tt := range tests {
		if err := Loopback(tt.in); (err == nil) != tt.ok {
			t.Errorf("Loopback(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}

func TestKafkaBrokers(t *testing.T) {
	got, err := KafkaBrokers(" 127.0.0.1:59092, ,localhost:9092")
	if err != nil || strings.Join(got, ",") != "127.0.0.1:59092,localhost:9092" {
		t.Fatalf("KafkaBrokers = %v, %v", got, err)
	}
	for _, bad := range []string{"", " , ", "127.0.0.1", "127.0.0.1:http", "kafka.example.org:9092", "127.0.0.1:9092,10.1.1.1:9092"} {
		if _, err := KafkaBrokers(bad); err == nil {
			t.Errorf("KafkaBrokers(%q): want an error", bad)
		}
	}
}

func TestRedisAddr(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"redis://127.0.0.1:56379", "127.0.0.1:56379", true},
		{"redis://:secret@127.0.0.1:56379/0", "127.0.0.1:56379", true},
		{"redis://localhost", "localhost:6379", true},
		{"rediss://127.0.0.1:6380", "", false},
		{"redis://cache.example.org:6379", "", false},
		{"127.0.0.1:6379", "", false},
	}
	for _, tt := range tests {
		got, err := RedisAddr(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("RedisAddr(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestCommand(t *testing.T) {
	if got := string(Command("INFO", "server")); got != "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n" {
		t.Errorf("Command = %q", got)
	}
}

func TestReadBulkAndInfoPID(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4836\r\ntcp_port:56379\r\n"
	r := bufio.NewReader(strings.NewReader("$" + strconv.Itoa(len(info)) + "\r\n" + info + "\r\n"))
	b, err := ReadBulk(r)
	if err != nil || string(b) != info {
		t.Fatalf("ReadBulk = %q, %v", b, err)
	}
	if pid, err := InfoPID(b); err != nil || pid != 4836 {
		t.Errorf("InfoPID = %d, %v", pid, err)
	}
	for _, bad := range []string{"-NOAUTH Authentication required.\r\n", "+OK\r\n", "$x\r\n", "$-1\r\n", "$5\r\nabc\r\n", "$3\r\nabcde"} {
		if _, err := ReadBulk(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("ReadBulk(%q): want an error", bad)
		}
	}
	stats := []byte("# Stats\r\ntotal_net_input_bytes:123456789012\r\ntotal_net_output_bytes:7\r\n")
	if n, err := InfoInt(stats, "total_net_input_bytes"); err != nil || n != 123456789012 {
		t.Errorf("InfoInt = %d, %v", n, err)
	}
	if _, err := InfoInt(stats, "total_net_repl_input_bytes"); err == nil {
		t.Error("InfoInt of a missing key: want an error")
	}
	for _, bad := range []string{"redis_version:7\r\n", "process_id:zero\r\n", "process_id:0\r\n"} {
		if _, err := InfoPID([]byte(bad)); err == nil {
			t.Errorf("InfoPID(%q): want an error", bad)
		}
	}
}
