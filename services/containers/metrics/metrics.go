// Package metrics samples a running container's resource use from its
// cgroup (v1 or v2) and network namespace, through /proc and /sys, for the
// Metrics feature: CPU, memory, block I/O, network and pids.
package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNoProcess marks a pid whose /proc entry is gone.
var ErrNoProcess = errors.New("process not found")

// Sample is one reading. CPU is cumulative; utilization needs two samples.
type Sample struct {
	At          time.Time
	CPUNanos    uint64
	MemoryUsed  uint64 // usage minus inactive file cache
	MemoryTotal uint64 // limit, capped at the host's memory
	IORead      uint64
	IOWrite     uint64
	NetRead     uint64
	NetWrite    uint64
	Pids        uint64
}

// Reader reads samples; Root is "/" except in tests.
type Reader struct {
	Root string
	Now  func() time.Time
}

// Read samples the container whose init process is pid.
func (r Reader) Read(pid int) (Sample, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	root := r.Root
	if root == "" {
		root = "/"
	}
	s := Sample{At: now()}
	cg, err := os.ReadFile(filepath.Join(root, "proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return s, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	paths := map[string]string{} // controller -> path; "" for the v2 unified path
	for _, l := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			paths[c] = parts[2]
		}
	}
	sys := filepath.Join(root, "sys", "fs", "cgroup")
	host := hostMemory(root)
	if p, ok := paths["memory"]; ok { // cgroup v1
		dir := filepath.Join(sys, "memory", p)
		usage := readUint(filepath.Join(dir, "memory.usage_in_bytes"))
		inactive := statField(filepath.Join(dir, "memory.stat"), "total_inactive_file")
		s.MemoryUsed = sub(usage, inactive)
		s.MemoryTotal = capAt(readUint(filepath.Join(dir, "memory.limit_in_bytes")), host)
		s.CPUNanos = readUint(filepath.Join(sys, "cpuacct", paths["cpuacct"], "cpuacct.usage"))
		s.IORead, s.IOWrite = blkioV1(filepath.Join(sys, "blkio", paths["blkio"], "blkio.throttle.io_service_bytes"))
		s.Pids = readUint(filepath.Join(sys, "pids", paths["pids"], "pids.current"))
	} else if p, ok := paths[""]; ok { // cgroup v2
		dir := filepath.Join(sys, p)
		s.MemoryUsed = sub(readUint(filepath.Join(dir, "memory.current")), statField(filepath.Join(dir, "memory.stat"), "inactive_file"))
		s.MemoryTotal = capAt(readUint(filepath.Join(dir, "memory.max")), host)
		s.CPUNanos = statField(filepath.Join(dir, "cpu.stat"), "usage_usec") * 1000
		s.IORead, s.IOWrite = ioV2(filepath.Join(dir, "io.stat"))
		s.Pids = readUint(filepath.Join(dir, "pids.current"))
	}
	s.NetRead, s.NetWrite = netDev(filepath.Join(root, "proc", strconv.Itoa(pid), "net", "dev"))
	return s, nil
}

// CPUUtilization is the CPU use in percent of the whole host between two
// samples of the same container.
func CPUUtilization(prev, cur Sample, cpus int) float64 {
	wall := cur.At.Sub(prev.At)
	if wall <= 0 || cpus <= 0 || cur.CPUNanos < prev.CPUNanos {
		return 0
	}
	return float64(cur.CPUNanos-prev.CPUNanos) / float64(wall.Nanoseconds()*int64(cpus)) * 100
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func capAt(v, limit uint64) uint64 {
	if limit > 0 && (v == 0 || v > limit) {
		return limit
	}
	return v
}

func readUint(p string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0 // "max"
	}
	return v
}

// statField reads "name value" from a flat keyed file.
func statField(p, name string) uint64 {
	f, err := os.Open(p)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == name {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func hostMemory(root string) uint64 {
	kb := statField(filepath.Join(root, "proc", "meminfo"), "MemTotal:")
	if kb == 0 {
		// MemTotal:       24732480 kB has several spaces.
		b, _ := os.ReadFile(filepath.Join(root, "proc", "meminfo"))
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ = strconv.ParseUint(f[1], 10, 64)
			}
		}
	}
	return kb * 1024
}

func blkioV1(p string) (rd, wr uint64) {
	b, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.ParseUint(f[2], 10, 64)
		switch f[1] {
		case "Read":
			rd += n
		case "Write":
			wr += n
		}
	}
	return rd, wr
}

func ioV2(p string) (rd, wr uint64) {
	b, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(b), "\n") {
		for _, kv := range strings.Fields(l)[min(1, len(strings.Fields(l))):] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				rd += n
			case "wbytes":
				wr += n
			}
		}
	}
	return rd, wr
}

// netDev sums the counters of every interface but lo in a /proc/net/dev.
func netDev(p string) (rx, tx uint64) {
	b, _ := os.ReadFile(p)
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}

// OOMKilled reports whether the kernel OOM killer killed a process of the
// cgroup at path (relative to the hierarchy roots, e.g. /<ns>/<id>), from
// cgroup v1 memory.oom_control or v2 memory.events. It must be asked before
// the task is deleted, while the cgroup still exists.
func (r Reader) OOMKilled(path string) bool {
	root := r.Root
	if root == "" {
		root = "/"
	}
	sys := filepath.Join(root, "sys", "fs", "cgroup")
	if n := statField(filepath.Join(sys, "memory", path, "memory.oom_control"), "oom_kill"); n > 0 {
		return true
	}
	return statField(filepath.Join(sys, path, "memory.events"), "oom_kill") > 0
}
