package cloudpeer

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// fakeBackend accepts connections and answers each CONNECT with CONNACK 0,
// standing in for the hub broker behind the adapter.
func fakeBackend(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	// Owned by the test; ends when the listener is closed at cleanup.
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if _, err := ReadConnect(bufio.NewReader(c)); err == nil {
				_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x00})
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// connack sends one CONNECT to the adapter and returns the CONNACK it gets.
func connack(t *testing.T, a *Adapter, user, pass string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A guard against a hung test, not an assertion on speed.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write(connectPacket("gw-hub", user, pass, false)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	return got
}

func TestAdapterRefuse(t *testing.T) {
	a, err := NewAdapter(fakeBackend(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.AddCredential(Credential{Tenant: "T", AuthID: "gw-auth", Password: "s3cret"})

	steps := []struct {
		name   string
		refuse byte
		pass   string
		want   byte
	}{
		{"good credentials", 0, "s3cret", 0x00},
		{"bad credentials", 0, "wrong", connackBadCredentials},
		{"bad protocol version", 0x01, "s3cret", 0x01},
		{"identifier rejected", 0x02, "s3cret", 0x02},
		{"not authorised despite bad credentials", connackNotAuthorized, "wrong", connackNotAuthorized},
		{"restored", 0, "s3cret", 0x00},
	}
	// The steps run in order on one adapter: each sets the refusal anew.
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			a.Refuse(s.refuse)
			got := connack(t, a, "gw-auth@T", s.pass)
			if want := []byte{0x20, 0x02, 0x00, s.want}; !bytes.Equal(got, want) {
				t.Errorf("CONNACK % x, want % x", got, want)
			}
			if n := a.Attempts(); n != i+1 {
				t.Errorf("%d attempts counted, want %d", n, i+1)
			}
		})
	}
}
