package procfs

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    CPU
		wantErr bool
	}{
		{
			name: "plain",
			data: "4242 (chat-server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 800000000 3000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0",
			want: CPU{User: 2500 * time.Millisecond, System: 750 * time.Millisecond},
		},
		{
			name: "name with spaces and parentheses",
			data: "7 (node (main) x) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 11 0 5 1 1",
			want: CPU{User: 30 * time.Millisecond, System: 40 * time.Millisecond},
		},
		{name: "no name", data: "1 2 3", wantErr: true},
		{name: "too short", data: "1 (x) S 1 2 3", wantErr: true},
		{name: "not a number", data: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u s 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.data))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	data := "Name:\tchat-server\nState:\tS (sleeping)\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\nSigQ:\t0/95000\n"
	st, err := ParseStatus([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS != 40960*1024 || st.HWM != 51200*1024 || st.Threads != 9 {
		t.Fatalf("got %+v", st)
	}
	if _, err := ParseStatus([]byte("Name:\tx\nThreads:\t1\n")); err == nil {
		t.Fatal("a status without VmRSS (a zombie) must be an error")
	}
}

func TestReadSelf(t *testing.T) {
	if _, err := ReadCPU(0); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.Threads <= 0 {
		t.Fatalf("implausible status of this process: %+v", st)
	}
	if _, err := ReadCPU(1 << 30); err == nil {
		t.Fatal("no such process: want an error")
	}
}

func TestParseMachine(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    Machine
		wantErr bool
	}{
		{
			name: "with steal",
			data: "cpu  100 5 50 1000 20 3 7 10 0 0\ncpu0 50 2 25 500 10 1 3 5 0 0\n",
			want: Machine{Busy: 1750 * time.Millisecond, Idle: 10200 * time.Millisecond},
		},
		{
			name: "old kernel without steal",
			data: "cpu 1 2 3 4 5 6 7\n",
			want: Machine{Busy: 190 * time.Millisecond, Idle: 90 * time.Millisecond},
		},
		{name: "not the cpu line", data: "intr 1 2 3 4 5 6 7 8\n", wantErr: true},
		{name: "short", data: "cpu 1 2 3\n", wantErr: true},
		{name: "not a number", data: "cpu 1 2 x 4 5 6 7\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMachine([]byte(tt.data))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
	m, err := ReadMachine()
	if err != nil || m.Busy <= 0 {
		t.Fatalf("this machine: %+v %v", m, err)
	}
	if l, err := LoadAverage(); err != nil || l < 0 {
		t.Fatalf("load average %v %v", l, err)
	}
}

func TestPromValues(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 2013
go_memstats_heap_inuse_bytes 3.1457e+07
go_gc_duration_seconds{quantile="0.5"} 0.0001
chat_connections 1000
go_goroutines_extra 7
bad_line
`
	got := PromValues([]byte(text), "go_goroutines", "go_memstats_heap_inuse_bytes", "chat_connections", "missing")
	want := map[string]float64{"go_goroutines": 2013, "go_memstats_heap_inuse_bytes": 31457000, "chat_connections": 1000}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v", k, got[k], v)
		}
	}
}
