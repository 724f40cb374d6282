package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func write(t *testing.T, root, p, body string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadV1(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/42/cgroup", "4:memory:/kanto-cm/c1\n3:cpu,cpuacct:/kanto-cm/c1\n2:blkio:/kanto-cm/c1\n1:pids:/kanto-cm/c1\n")
	write(t, root, "proc/meminfo", "MemTotal:       1000 kB\n")
	write(t, root, "sys/fs/cgroup/memory/kanto-cm/c1/memory.usage_in_bytes", "50000\n")
	write(t, root, "sys/fs/cgroup/memory/kanto-cm/c1/memory.stat", "cache 1\ntotal_inactive_file 10000\n")
	write(t, root, "sys/fs/cgroup/memory/kanto-cm/c1/memory.limit_in_bytes", "9223372036854771712\n")
	write(t, root, "sys/fs/cgroup/cpuacct/kanto-cm/c1/cpuacct.usage", "2000000000\n")
	write(t, root, "sys/fs/cgroup/blkio/kanto-cm/c1/blkio.throttle.io_service_bytes", "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\n")
	write(t, root, "sys/fs/cgroup/pids/kanto-cm/c1/pids.current", "3\n")
	write(t, root, "proc/42/net/dev", "Inter-|   Receive\n face |bytes\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 1500 10 0 0 0 0 0 0 700 5 0 0 0 0 0 0\n")
	at := time.Unix(100, 0)
	s, err := Reader{Root: root, Now: func() time.Time { return at }}.Read(42)
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{At: at, CPUNanos: 2e9, MemoryUsed: 40000, MemoryTotal: 1024000, IORead: 100, IOWrite: 200, NetRead: 1500, NetWrite: 700, Pids: 3}
	if s != want {
		t.Errorf("Read = %+v\nwant   %+v", s, want)
	}
	next := want
	next.At = at.Add(time.Second)
	next.CPUNanos += 5e8
	if u := CPUUtilization(want, next, 2); u != 25 {
		t.Errorf("utilization %v, want 25", u)
	}
	if _, err := (Reader{Root: root}).Read(7); err == nil {
		t.Error("missing pid accepted")
	}
}

func TestReadV2(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/9/cgroup", "0::/kanto-cm/c2\n")
	write(t, root, "proc/meminfo", "MemTotal:       1000 kB\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/memory.current", "4096\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/memory.max", "max\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/memory.stat", "inactive_file 96\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/cpu.stat", "usage_usec 1500\nuser_usec 1000\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n")
	write(t, root, "sys/fs/cgroup/kanto-cm/c2/pids.current", "1\n")
	s, err := Reader{Root: root}.Read(9)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryUsed != 4000 || s.MemoryTotal != 1024000 || s.CPUNanos != 1500000 || s.IORead != 10 || s.IOWrite != 20 || s.Pids != 1 {
		t.Errorf("Read = %+v", s)
	}
}

func TestOOMKilled(t *testing.T) {
	root := t.TempDir()
	write(t, root, "sys/fs/cgroup/memory/ns/a/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
	write(t, root, "sys/fs/cgroup/memory/ns/b/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
	write(t, root, "sys/fs/cgroup/ns/c/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
	r := Reader{Root: root}
	for path, want := range map[string]bool{"/ns/a": true, "/ns/b": false, "/ns/c": true, "/ns/none": false} {
		if got := r.OOMKilled(path); got != want {
			t.Errorf("OOMKilled(%s) = %v, want %v", path, got, want)
		}
	}
}
