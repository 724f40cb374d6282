package pid1

import (
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux input constants (linux/input-event-codes.h, linux/input.h).
const (
	evKey    = 0x01
	keyPower = 116
	keyMax   = 0x2ff
)

// inputEvent is struct input_event: a timeval of two longs, then type,
// code and value; 24 bytes on 64-bit, 16 on 32-bit targets.
type inputEvent struct {
	Sec, Usec uintptr
	Type      uint16
	Code      uint16
	Value     int32
}

// evIOCGBit is EVIOCGBIT(ev, n): the bitmap of codes of type ev a device
// can send.
func evIOCGBit(ev, n uintptr) uintptr {
	return 2<<30 | n<<16 | 'E'<<8 | (0x20 + ev)
}

// hasPowerKey reports whether the input device can send KEY_POWER (the
// ACPI power button, gpio-keys wired to a power switch).
func hasPowerKey(f *os.File) bool {
	var bits [(keyMax + 1) / 8]byte
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), evIOCGBit(evKey, uintptr(len(bits))), uintptr(unsafe.Pointer(&bits[0])))
	return errno == 0 && bits[keyPower/8]&(1<<(keyPower%8)) != 0
}

// watchPowerKeys opens every input device (devpattern, e.g.
// /dev/input/event*) with a power key and sends on pressed when one is
// pressed, so a power button (or QEMU's system_powerdown, libvirt's
// shutdown) powers the device off cleanly instead of being ignored. It
// returns the devices watched; their readers end when the files close at
// reboot.
func watchPowerKeys(log *slog.Logger, devpattern string, pressed chan<- struct{}) []string {
	paths, _ := filepath.Glob(devpattern)
	var watched []string
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if !hasPowerKey(f) {
			f.Close()
			continue
		}
		watched = append(watched, p)
		// Owned by PID 1 for its lifetime: reads key events until the
		// device goes away.
		go func() {
			defer f.Close()
			if err := readPowerKey(f, pressed); err != nil {
				log.Warn("power key", "device", p, "err", err)
			}
		}()
	}
	return watched
}

// readPowerKey reads input events from r and signals each KEY_POWER press
// (not its release or autorepeat) without blocking.
func readPowerKey(r io.Reader, pressed chan<- struct{}) error {
	buf := make([]byte, unsafe.Sizeof(inputEvent{}))
	off := unsafe.Offsetof(inputEvent{}.Type)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		typ := binary.NativeEndian.Uint16(buf[off:])
		code := binary.NativeEndian.Uint16(buf[off+2:])
		value := int32(binary.NativeEndian.Uint32(buf[off+4:]))
		if typ == evKey && code == keyPower && value == 1 {
			select {
			case pressed <- struct{}{}:
			default:
			}
		}
	}
}
