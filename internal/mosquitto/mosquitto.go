// Package mosquitto runs a real Mosquitto broker on a loopback port with its
// own config, persistence and log in a folder; tests (via mosquittotest) and
// the demo use it.
package mosquitto

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options shape the broker.
type Options struct {
	// Extra is appended to mosquitto.conf (e.g. max_queued_messages).
	Extra string
	// Users maps user names to passwords; when set, anonymous access is off.
	Users map[string]string
	// TLS, when set, makes the listener TLS with these PEM files.
	TLS *TLS
	// Persistence keeps sessions on disk across Restart.
	Persistence bool
	// SysLog adds Kanto's $SYS log settings (subscribe/unsubscribe tracking).
	SysLog bool
}

// TLS holds PEM file paths for the listener.
type TLS struct {
	CAFile, CertFile, KeyFile string
	// RequireCert asks clients for a certificate signed by CAFile.
	RequireCert bool
}

// Broker is a running Mosquitto.
type Broker struct {
	bin  string
	dir  string
	Port int
	conf string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Start writes a config into dir and starts a broker on port.
func Start(dir string, port int, o Options) (*Broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, fmt.Errorf("mosquitto not installed: %w", err)
	}
	b := &Broker{bin: bin, dir: dir, Port: port}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	var c strings.Builder
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.Port)
	if os.Geteuid() == 0 {
		// Otherwise Mosquitto drops to user mosquitto, which cannot read
		// a private temp folder.
		c.WriteString("user root\n")
	}
	fmt.Fprintf(&c, "persistence %v\npersistence_location %s/\n", o.Persistence, b.dir)
	c.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if o.SysLog {
		c.WriteString("log_dest topic\nlog_type subscribe\nlog_type unsubscribe\n")
	}
	if len(o.Users) > 0 {
		pw := filepath.Join(b.dir, "passwd")
		var lines strings.Builder
		for u, p := range o.Users {
			fmt.Fprintf(&lines, "%s:%s\n", u, p)
		}
		if err := os.WriteFile(pw, []byte(lines.String()), 0o600); err != nil {
			return nil, err
		}
		// mosquitto_passwd -U hashes the plain-text file in place.
		if out, err := exec.Command("mosquitto_passwd", "-U", pw).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mosquitto_passwd: %v: %s", err, out)
		}
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		c.WriteString("allow_anonymous true\n")
	}
	if o.TLS != nil {
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", o.TLS.CAFile, o.TLS.CertFile, o.TLS.KeyFile)
		if o.TLS.RequireCert {
			c.WriteString("require_certificate true\n")
			if len(o.Users) == 0 {
				c.WriteString("use_identity_as_username true\n")
			}
		}
	}
	c.WriteString(o.Extra)
	c.WriteString("\n")
	if err := os.WriteFile(b.conf, []byte(c.String()), 0o644); err != nil {
		return nil, err
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// URL is the broker's tcp:// (or ssl://) address.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Addr is host:port.
func (b *Broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)) }

// Log returns what the broker printed so far.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

func (b *Broker) start() error {
	b.mu.Lock()
	b.log = &bytes.Buffer{}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout = &lockedWriter{mu: &b.mu, w: b.log}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Start()
	b.cmd = cmd
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Kill()
	return fmt.Errorf("mosquitto did not listen on %s: %s", b.Addr(), b.Log())
}

// Stop terminates the broker (SIGTERM, so persistence is saved).
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd := b.cmd
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill stops the broker with SIGKILL (a crash).
func (b *Broker) Kill() {
	b.mu.Lock()
	cmd := b.cmd
	b.cmd = nil
	b.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// Restart starts the broker again on the same port with the same config.
func (b *Broker) Restart() error {
	b.Stop()
	return b.start()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
