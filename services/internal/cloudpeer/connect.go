package cloudpeer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrPacket marks bytes that are not an MQTT 3.1/3.1.1 CONNECT packet.
var ErrPacket = errors.New("malformed MQTT CONNECT")

// maxConnect bounds a CONNECT packet; a real one is tiny.
const maxConnect = 64 << 10

// ConnectPacket is what the adapter reads of a CONNECT packet.
type ConnectPacket struct {
	Protocol    string
	Level       byte
	ClientID    string
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	CleanStart  bool
	KeepAlive   uint16
	Raw         []byte // the whole packet, to forward unchanged
}

// ReadConnect reads one CONNECT packet.
func ReadConnect(r *bufio.Reader) (*ConnectPacket, error) {
	h, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if h != 0x10 {
		return nil, fmt.Errorf("%w: first packet type 0x%02x", ErrPacket, h)
	}
	raw := []byte{h}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return nil, fmt.Errorf("%w: remaining length too long", ErrPacket)
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		raw = append(raw, b)
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	if n > maxConnect {
		return nil, fmt.Errorf("%w: %d bytes", ErrPacket, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	c, err := ParseConnectBody(body)
	if err != nil {
		return nil, err
	}
	c.Raw = append(raw, body...)
	return c, nil
}

// ParseConnectBody parses the variable header and payload of a CONNECT.
func ParseConnectBody(b []byte) (*ConnectPacket, error) {
	p := parser{b: b}
	c := &ConnectPacket{}
	c.Protocol = string(p.bytes())
	c.Level = p.byte()
	flags := p.byte()
	c.KeepAlive = p.u16()
	if p.err != nil {
		return nil, p.err
	}
	if c.Protocol != "MQTT" && c.Protocol != "MQIsdp" {
		return nil, fmt.Errorf("%w: protocol %q", ErrPacket, c.Protocol)
	}
	if flags&0x01 != 0 {
		return nil, fmt.Errorf("%w: reserved flag set", ErrPacket)
	}
	c.CleanStart = flags&0x02 != 0
	c.ClientID = string(p.bytes())
	if flags&0x04 != 0 {
		p.bytes() // will topic
		p.bytes() // will message
	}
	if flags&0x80 != 0 {
		c.HasUsername = true
		c.Username = string(p.bytes())
	}
	if flags&0x40 != 0 {
		c.HasPassword = true
		c.Password = p.bytes()
	}
	if p.err != nil {
		return nil, p.err
	}
	return c, nil
}

type parser struct {
	b   []byte
	err error
}

func (p *parser) need(n int) bool {
	if p.err == nil && len(p.b) < n {
		p.err = fmt.Errorf("%w: truncated", ErrPacket)
	}
	return p.err == nil
}

func (p *parser) byte() byte {
	if !p.need(1) {
		return 0
	}
	v := p.b[0]
	p.b = p.b[1:]
	return v
}

func (p *parser) u16() uint16 {
	if !p.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(p.b)
	p.b = p.b[2:]
	return v
}

func (p *parser) bytes() []byte {
	n := int(p.u16())
	if !p.need(n) {
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}
