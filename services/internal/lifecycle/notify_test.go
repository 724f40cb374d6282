package lifecycle

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real notify socket, as systemd provides, receives what the service says.
func TestNotifierTalksToTheNotifySocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms
	t.Setenv("WATCHDOG_PID", "")

	n := NewNotifier(slog.New(slog.DiscardHandler))
	n.Ready("up")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Watchdog(ctx, func() bool { return true }); close(done) }()

	var got []string
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		conn.SetReadDeadline(deadline)
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:k]))
	}
	cancel()
	<-done
	n.Stopping()
	k, _ := conn.Read(buf)
	got = append(got, string(buf[:k]))

	all := strings.Join(got, "|")
	for _, want := range []string{"READY=1\nSTATUS=up", "WATCHDOG=1", "STOPPING=1"} {
		if !strings.Contains(all, want) {
			t.Errorf("notify socket got %q, want %q in it", all, want)
		}
	}
}

func TestWatchdogWithholdsPingWhenWedged(t *testing.T) {
	var sent []string
	n := &Notifier{
		log:      slog.New(slog.DiscardHandler),
		notify:   func(s string) (bool, error) { sent = append(sent, s); return true, nil },
		interval: func() (time.Duration, error) { return 20 * time.Millisecond, nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	n.Watchdog(ctx, func() bool { return false })
	if len(sent) != 0 {
		t.Errorf("pinged %d times while not alive", len(sent))
	}
}

func TestOutsideSystemdIsQuiet(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier(slog.New(slog.DiscardHandler))
	n.Ready("x") // must not fail or block
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n.Watchdog(ctx, nil) // returns at once: no watchdog configured
}
