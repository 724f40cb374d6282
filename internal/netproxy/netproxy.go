// Package netproxy is a loopback TCP proxy for tests that cut the network:
// Cut drops every open connection and refuses new ones until Restore.
//
// While cut, the proxy's port is closed, so a connection attempt is
// refused at once and no byte is written into a connection that the
// proxy would only drop (a test that counts bytes sent then sees what the
// code under test resent, not what the kernel buffered).
package netproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its own loopback port to a target.
type Proxy struct {
	target, addr string

	mu     sync.Mutex
	l      net.Listener // nil while cut
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// New listens on a free loopback port and forwards to target.
func New(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: l.Addr().String(), l: l, conns: map[net.Conn]struct{}{}}
	p.serve(l)
	return p, nil
}

func (p *Proxy) serve(l net.Listener) {
	p.wg.Add(1)
	// Owned by the proxy; exits when Cut or Close closes the listener.
	go p.accept(l)
}

// Addr is the proxy's host:port; it stays the same across cuts.
func (p *Proxy) Addr() string { return p.addr }

// Cut closes the port and all connections.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore opens the port again. It panics if the port cannot be had back
// within a few seconds: the test's network could not be restored.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil || p.closed {
		return
	}
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var l net.Listener
		if l, err = net.Listen("tcp", p.addr); err == nil {
			p.l = l
			p.serve(l)
			return
		}
	}
	panic(fmt.Sprintf("netproxy: reopen %s: %v", p.addr, err))
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept(l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.l != l { // cut while this connection was being accepted
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
