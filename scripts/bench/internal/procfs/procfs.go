// Package procfs reads what the bench measures of a process from Linux's
// /proc: CPU time (utime+stime of /proc/<pid>/stat), resident memory and
// threads (/proc/<pid>/status). It also reads the values of unlabelled
// metrics from a Prometheus text exposition.
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture the project runs on (the kernel's
// ABI fixes it, whatever CONFIG_HZ is).
const ClockTicks = 100

// CPU is a process's CPU time so far.
type CPU struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c CPU) Total() time.Duration { return c.User + c.System }

// Sub returns c - o.
func (c CPU) Sub(o CPU) CPU { return CPU{User: c.User - o.User, System: c.System - o.System} }

// ParseStat reads utime and stime from the contents of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStat(data []byte) (CPU, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return CPU{}, fmt.Errorf("parse /proc stat: no ')' in %q", truncate(data))
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return CPU{}, fmt.Errorf("parse /proc stat: %d fields after the name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return CPU{}, fmt.Errorf("parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	tick := time.Second / ClockTicks
	return CPU{User: time.Duration(u) * tick, System: time.Duration(s) * tick}, nil
}

// Status is what the bench reads of /proc/<pid>/status.
type Status struct {
	// RSS is the resident set (VmRSS), HWM its peak (VmHWM), in bytes.
	RSS, HWM int64
	// Threads is the number of OS threads.
	Threads int
}

// ParseStatus reads VmRSS, VmHWM and Threads from the contents of
// /proc/<pid>/status.
func ParseStatus(data []byte) (Status, error) {
	var st Status
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			st.RSS = n * kB(f)
			seen |= 1
		case "VmHWM":
			st.HWM = n * kB(f)
		case "Threads":
			st.Threads = int(n)
			seen |= 2
		}
	}
	if seen != 3 {
		return st, fmt.Errorf("parse /proc status: VmRSS or Threads missing")
	}
	return st, nil
}

func kB(f []string) int64 {
	if len(f) > 1 && f[1] == "kB" {
		return 1024
	}
	return 1
}

// ReadCPU returns the CPU time of process pid (0: this process).
func ReadCPU(pid int) (CPU, error) {
	data, err := os.ReadFile(path(pid, "stat"))
	if err != nil {
		return CPU{}, fmt.Errorf("read CPU time: %w", err)
	}
	return ParseStat(data)
}

// ReadStatus returns the memory and threads of process pid (0: this
// process).
func ReadStatus(pid int) (Status, error) {
	data, err := os.ReadFile(path(pid, "status"))
	if err != nil {
		return Status{}, fmt.Errorf("read memory: %w", err)
	}
	return ParseStatus(data)
}

func path(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

// Machine is the CPU time of the whole machine so far (first line of
// /proc/stat), over all cores.
type Machine struct {
	// Busy is user, nice, system, irq, softirq and steal time; Idle is
	// idle and iowait time.
	Busy, Idle time.Duration
}

// Sub returns m - o.
func (m Machine) Sub(o Machine) Machine { return Machine{Busy: m.Busy - o.Busy, Idle: m.Idle - o.Idle} }

// ParseMachine reads the aggregate "cpu" line of the contents of
// /proc/stat.
func ParseMachine(data []byte) (Machine, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("parse /proc/stat: first line %q", truncate(line))
	}
	var v [7]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("parse /proc/stat: field %d %q", i+1, f[i+1])
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq [steal ...]
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	if len(f) > 8 {
		if steal, err := strconv.ParseUint(f[8], 10, 64); err == nil {
			busy += steal
		}
	}
	tick := time.Second / ClockTicks
	return Machine{Busy: time.Duration(busy) * tick, Idle: time.Duration(v[3]+v[4]) * tick}, nil
}

// ReadMachine returns the machine's CPU time so far.
func ReadMachine() (Machine, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Machine{}, fmt.Errorf("read machine CPU time: %w", err)
	}
	return ParseMachine(data)
}

// LoadAverage returns the 1-minute load average (/proc/loadavg).
func LoadAverage() (float64, error) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("read load average: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0, fmt.Errorf("parse /proc/loadavg: empty")
	}
	return strconv.ParseFloat(f[0], 64)
}

// PromValues returns the values of the named unlabelled metrics found in
// a Prometheus text exposition (names not found are absent from the map).
func PromValues(text []byte, names ...string) map[string]float64 {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		out[f[0]] = v
	}
	return out
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
