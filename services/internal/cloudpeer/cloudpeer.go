// Package cloudpeer plays Eclipse Hono's MQTT adapter for tests and the
// demo, since the real adapter cannot run here. A real Mosquitto carries the
// traffic; in front of it the Adapter authenticates devices the way Hono
// does (user name <auth-id>@<tenant> with a password, or a client
// certificate) and answers a failed authentication with CONNACK 0x04 (bad
// user name or password), as Hono's adapter does; Refuse makes it answer
// every CONNECT with a chosen refusal instead. Northbound gives tests
// and the demo what Hono's northbound API gives a back end: the device's
// telemetry and events, and commands with their responses.
//
// It is a test and demo tool, not part of the device image.
package cloudpeer

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Credential is one registered device credential.
type Credential struct {
	Tenant   string
	AuthID   string
	Password string
}

// Adapter is the authenticating front of the hub broker.
type Adapter struct {
	backend string
	tls     *tls.Config
	log     *slog.Logger
	l       net.Listener

	mu    sync.Mutex
	creds map[string]string // authId@tenant -> password
	certs map[string]bool   // accepted client certificate subject DNs
	conns map[net.Conn]struct{}
	cut   bool
	// refuse, when not 0, is the CONNACK return code every CONNECT gets.
	refuse byte
	wg     sync.WaitGroup
	// Attempts counts CONNECTs seen, for tests of retry behaviour.
	attempts int
}

// NewAdapter listens on a free loopback port. tlsCfg (may be nil) is the
// server side TLS; set ClientAuth in it for mutual TLS.
func NewAdapter(backend string, tlsCfg *tls.Config, log *slog.Logger) (*Adapter, error) {
	var l net.Listener
	var err error
	if tlsCfg != nil {
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{backend: backend, tls: tlsCfg, log: log, l: l,
		creds: map[string]string{}, certs: map[string]bool{}, conns: map[net.Conn]struct{}{}}
	a.wg.Add(1)
	// Owned by the adapter; ends when Close closes the listener.
	go a.accept()
	return a, nil
}

// Addr is host:port of the adapter.
func (a *Adapter) Addr() string { return a.l.Addr().String() }

// AddCredential registers a password credential.
func (a *Adapter) AddCredential(c Credential) {
	a.mu.Lock()
	a.creds[c.AuthID+"@"+c.Tenant] = c.Password
	a.mu.Unlock()
}

// AddCertificate accepts client certificates with this subject DN.
func (a *Adapter) AddCertificate(subjectDN string) {
	a.mu.Lock()
	a.certs[subjectDN] = true
	a.mu.Unlock()
}

// Attempts returns how many CONNECT packets the adapter has seen.
func (a *Adapter) Attempts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts
}

// Refuse makes the adapter answer every later CONNECT with CONNACK return
// code rc, whatever the credentials (MQTT 3.1.1: 1 unacceptable protocol
// version, 2 identifier rejected, 3 server unavailable, 4 bad user name or
// password, 5 not authorised). Refuse(0) restores authentication.
// Connections already up are kept.
func (a *Adapter) Refuse(rc byte) {
	a.mu.Lock()
	a.refuse = rc
	a.mu.Unlock()
}

// Cut drops every device connection and refuses new ones (an outage).
func (a *Adapter) Cut() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cut = true
	for c := range a.conns {
		c.Close()
	}
	a.conns = map[net.Conn]struct{}{}
}

// Restore ends an outage.
func (a *Adapter) Restore() {
	a.mu.Lock()
	a.cut = false
	a.mu.Unlock()
}

// Close stops the adapter.
func (a *Adapter) Close() error {
	err := a.l.Close()
	a.Cut()
	a.wg.Wait()
	return err
}

func (a *Adapter) accept() {
	defer a.wg.Done()
	for {
		c, err := a.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		a.mu.Lock()
		if a.cut {
			a.mu.Unlock()
			c.Close()
			continue
		}
		a.conns[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Add(1)
		go a.serve(c)
	}
}

// CONNACK return codes of MQTT 3.1.1.
const (
	connackBadCredentials = 0x04
	connackNotAuthorized  = 0x05
)

func (a *Adapter) serve(c net.Conn) {
	defer a.wg.Done()
	defer a.forget(c)
	r := bufio.NewReader(c)
	if tc, ok := c.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			a.log.Debug("TLS handshake failed", "err", err)
			return
		}
	}
	conn, err := ReadConnect(r)
	if err != nil {
		a.log.Debug("bad CONNECT", "err", err)
		return
	}
	a.mu.Lock()
	a.attempts++
	a.mu.Unlock()
	if rc := a.authenticate(c, conn); rc != 0 {
		a.log.Debug("device refused", "client", conn.ClientID, "user", conn.Username, "rc", rc)
		_, _ = c.Write([]byte{0x20, 0x02, 0x00, rc})
		return
	}
	up, err := net.Dial("tcp", a.backend)
	if err != nil {
		_, _ = c.Write([]byte{0x20, 0x02, 0x00, 0x03}) // server unavailable
		return
	}
	a.mu.Lock()
	if a.cut {
		a.mu.Unlock()
		up.Close()
		return
	}
	a.conns[up] = struct{}{}
	a.mu.Unlock()
	defer a.forget(up)
	if _, err := up.Write(conn.Raw); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, r); up.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

func (a *Adapter) forget(c net.Conn) {
	c.Close()
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

// authenticate returns 0 or a CONNACK refusal code.
func (a *Adapter) authenticate(c net.Conn, conn *ConnectPacket) byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refuse != 0 {
		return a.refuse
	}
	if tc, ok := c.(*tls.Conn); ok {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			if a.certs[certs[0].Subject.String()] {
				return 0
			}
			return connackNotAuthorized
		}
	}
	if !conn.HasUsername || !conn.HasPassword {
		return connackBadCredentials
	}
	want, ok := a.creds[conn.Username]
	if !ok || subtle.ConstantTimeCompare([]byte(want), conn.Password) != 1 {
		return connackBadCredentials
	}
	return 0
}
