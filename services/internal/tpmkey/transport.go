package tpmkey

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// maxResponse is the largest response we accept; TPMs answer within 4 KiB
// (the kernel's TPM_BUFSIZE), we allow some room.
const maxResponse = 8192

// commandTimeout bounds one command on a socket; a signature takes well
// under a second, even on a slow TPM.
const commandTimeout = 2 * time.Minute

// conn is one open connection to a TPM: a character device (/dev/tpmrm0,
// /dev/tpm0) or the server socket of a TPM simulator (swtpm socket
// --server type=unixio), which both take a raw command and return a raw
// response. It implements go-tpm's transport.TPM. Not safe for concurrent
// use: Key serialises the commands.
type conn struct {
	rwc  io.ReadWriteCloser
	sock net.Conn // rwc when it is a socket, for deadlines
}

// dial opens path, a character device or a unix socket.
func dial(path string) (*conn, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDevice, err)
	}
	switch m := fi.Mode(); {
	case m&os.ModeSocket != 0:
		c, err := net.Dial("unix", path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDevice, err)
		}
		return &conn{rwc: c, sock: c}, nil
	case m&os.ModeCharDevice != 0:
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDevice, err)
		}
		return &conn{rwc: f}, nil
	default:
		return nil, fmt.Errorf("%w: %s is neither a character device nor a unix socket (mode %v)", ErrDevice, path, m)
	}
}

// Send writes one command and reads its response. A device returns the
// whole response in one read; a socket may deliver it in pieces, so the
// size in the response header decides when it is complete.
func (c *conn) Send(cmd []byte) ([]byte, error) {
	if c.sock != nil {
		_ = c.sock.SetDeadline(time.Now().Add(commandTimeout))
	}
	if _, err := c.rwc.Write(cmd); err != nil {
		return nil, fmt.Errorf("%w: write: %v", ErrDevice, err)
	}
	buf := make([]byte, maxResponse)
	n, err := c.rwc.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrDevice, err)
	}
	// Header: tag (2), size (4), response code (4).
	if n < 6 {
		if _, err := io.ReadFull(c.rwc, buf[n:6]); err != nil {
			return nil, fmt.Errorf("%w: read: %v", ErrDevice, err)
		}
		n = 6
	}
	size := int(binary.BigEndian.Uint32(buf[2:6]))
	if size < 10 || size > maxResponse {
		return nil, fmt.Errorf("%w: response size %d: not a TPM 2.0", ErrDevice, size)
	}
	if n < size {
		if _, err := io.ReadFull(c.rwc, buf[n:size]); err != nil {
			return nil, fmt.Errorf("%w: read: %v", ErrDevice, err)
		}
	} else if n > size {
		return nil, fmt.Errorf("%w: response of %d bytes says %d: not a TPM 2.0", ErrDevice, n, size)
	}
	return buf[:size], nil
}

// Close closes the device or socket.
func (c *conn) Close() error { return c.rwc.Close() }
