package pid1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"unsafe"
)

func rawEvent(typ, code uint16, value int32) []byte {
	b := make([]byte, unsafe.Sizeof(inputEvent{}))
	off := unsafe.Offsetof(inputEvent{}.Type)
	binary.NativeEndian.PutUint16(b[off:], typ)
	binary.NativeEndian.PutUint16(b[off+2:], code)
	binary.NativeEndian.PutUint32(b[off+4:], uint32(value))
	return b
}

// TestReadPowerKey: only a press of KEY_POWER counts; its release and
// autorepeat, other keys and other event types do not.
func TestReadPowerKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events [][]byte
		want   int
	}{
		{"press and release", [][]byte{rawEvent(evKey, keyPower, 1), rawEvent(0, 0, 0), rawEvent(evKey, keyPower, 0)}, 1},
		{"autorepeat", [][]byte{rawEvent(evKey, keyPower, 2)}, 0},
		{"other key", [][]byte{rawEvent(evKey, 28, 1)}, 0},
		{"not a key event", [][]byte{rawEvent(0x04, keyPower, 1)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pressed := make(chan struct{}, 4)
			err := readPowerKey(bytes.NewReader(bytes.Join(tc.events, nil)), pressed)
			if !errors.Is(err, io.EOF) {
				t.Errorf("readPowerKey at the end of input: %v, want EOF", err)
			}
			if len(pressed) != tc.want {
				t.Errorf("%d presses signalled, want %d", len(pressed), tc.want)
			}
		})
	}
	// A half event at the end is an error, not a press.
	pressed := make(chan struct{}, 1)
	ev := rawEvent(evKey, keyPower, 1)
	if err := readPowerKey(bytes.NewReader(ev[:len(ev)-1]), pressed); !errors.Is(err, io.ErrUnexpectedEOF) || len(pressed) != 0 {
		t.Errorf("truncated event: %v, %d presses", err, len(pressed))
	}
}

func TestEvIOCGBit(t *testing.T) {
	// EVIOCGBIT(EV_KEY, 96) as the kernel headers compute it.
	if got := evIOCGBit(evKey, 96); got != 0x80604521 {
		t.Errorf("EVIOCGBIT(EV_KEY, 96) = %#x, want 0x80604521", got)
	}
}
