// Package services reaches the services the cluster and pipeline modes
// use (Redis, PostgreSQL, Kafka, as scripts/services runs them): it checks
// that their addresses are on loopback, finds the Redis server's process,
// and gives a run PostgreSQL databases of its own.
package services

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Loopback checks that host (a name or an address, without port) is on
// loopback: the bench never loads anything else.
func Loopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (the bench only runs on loopback)", host)
	}
	return nil
}

// LoopbackHostPort checks a host:port on loopback.
func LoopbackHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", hp, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port", hp)
	}
	return Loopback(host)
}

// KafkaBrokers splits a KAFKA_BROKERS list and checks every broker is on
// loopback.
func KafkaBrokers(list string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(list, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if err := LoopbackHostPort(b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no broker given")
	}
	return out, nil
}

// RedisAddr returns the host:port of a redis:// URL on loopback.
func RedisAddr(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse the Redis URL: %w", err)
	}
	if u.Scheme != "redis" {
		return "", fmt.Errorf("scheme %q: want redis:// (a local Redis without TLS)", u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if err := Loopback(host); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

// RedisPID asks the Redis server at rawURL for its process id (INFO
// server), so that its CPU can be read from /proc.
func RedisPID(ctx context.Context, rawURL string) (int, error) {
	info, err := RedisInfo(ctx, rawURL, "server")
	if err != nil {
		return 0, err
	}
	return InfoPID(info)
}

// RedisNetBytes returns the bytes the Redis server at rawURL has read
// from and written to its clients so far (INFO stats).
func RedisNetBytes(ctx context.Context, rawURL string) (in, out int64, err error) {
	info, err := RedisInfo(ctx, rawURL, "stats")
	if err != nil {
		return 0, 0, err
	}
	if in, err = InfoInt(info, "total_net_input_bytes"); err != nil {
		return 0, 0, err
	}
	out, err = InfoInt(info, "total_net_output_bytes")
	return in, out, err
}

// RedisInfo returns the text of INFO section from the Redis server at
// rawURL.
func RedisInfo(ctx context.Context, rawURL, section string) ([]byte, error) {
	addr, err := RedisAddr(rawURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(rawURL)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	if pw, ok := u.User.Password(); ok {
		user := u.User.Username()
		if user == "" {
			user = "default"
		}
		if _, err := c.Write(Command("AUTH", user, pw)); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return nil, fmt.Errorf("AUTH refused: %q %v", strings.TrimSpace(line), err)
		}
	}
	if _, err := c.Write(Command("INFO", section)); err != nil {
		return nil, fmt.Errorf("INFO: %w", err)
	}
	info, err := ReadBulk(r)
	if err != nil {
		return nil, fmt.Errorf("INFO: %w", err)
	}
	return info, nil
}

// Command encodes a Redis command as a RESP array of bulk strings.
func Command(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// maxBulk bounds a bulk string the bench reads.
const maxBulk = 1 << 20

// ReadBulk reads one RESP bulk-string reply (an error reply is an error).
func ReadBulk(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return nil, fmt.Errorf("redis: %s", line[1:])
	case !strings.HasPrefix(line, "$"):
		return nil, fmt.Errorf("want a bulk string, got %q", line)
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > maxBulk {
		return nil, fmt.Errorf("bad bulk length %q", line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(buf, []byte("\r\n")) {
		return nil, errors.New("bulk string not ended by CRLF")
	}
	return buf[:n], nil
}

// InfoPID reads process_id from the text of INFO server.
func InfoPID(info []byte) (int, error) {
	pid, err := InfoInt(info, "process_id")
	if err == nil && pid <= 0 {
		err = fmt.Errorf("INFO: bad process_id %d", pid)
	}
	return int(pid), err
}

// InfoInt reads the whole number key from the text of an INFO reply.
func InfoInt(info []byte, key string) (int64, error) {
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO: bad %s %q", key, v)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("INFO has no %s", key)
}
