package netproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo serves one line back per connection.
func echo(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// Owned by the test; ends when the listener closes.
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte(line))
				}
			}()
		}
	}()
	return l.Addr().String()
}

func roundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

func TestCutRefusesAndRestoreReopensSamePort(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := p.Addr()
	if err := roundTrip(addr); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	time.Sleep(50 * time.Millisecond) // let the proxy register it
	p.Cut()
	// An open connection is dropped: a read ends instead of blocking.
	_ = open.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := open.Read(make([]byte, 1)); err == nil {
		t.Error("a connection open at the cut still reads data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("a connection open at the cut was not closed")
	}
	// A new connection is refused at once: nothing can be written into it.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("dial during the cut succeeded")
	}
	p.Restore()
	if p.Addr() != addr {
		t.Errorf("address changed across the cut: %s, then %s", addr, p.Addr())
	}
	if err := roundTrip(addr); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
	// Close is final: Restore after it leaves the port closed.
	p.Close()
	p.Restore()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("dial after Close succeeded")
	}
}
