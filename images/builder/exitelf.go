package builder

import (
	"encoding/binary"
	"io"

	"github.com/u-root/u-root/pkg/cpio"
)

// exitELF returns a minimal static x86-64 Linux executable that calls
// exit(1): the init of the "kernel panic" test image.
func exitELF() []byte {
	return elfExec([]byte{
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
		0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
		0x0f, 0x05, // syscall
	})
}

// elfExec wraps position-dependent code (loaded right after the headers) in an
// ELF executable with one PT_LOAD segment.
func elfExec(code []byte) []byte {
	const base, hdr = 0x400000, 64 + 56
	b := make([]byte, hdr+len(code))
	le := binary.LittleEndian
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+hdr) // entry
	le.PutUint64(b[32:], 64)       // phoff
	le.PutUint16(b[52:], 64)       // ehsize
	le.PutUint16(b[54:], 56)       // phentsize
	le.PutUint16(b[56:], 1)        // phnum
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(len(b)))
	le.PutUint64(ph[40:], uint64(len(b)))
	le.PutUint64(ph[48:], 0x1000)
	copy(b[hdr:], code)
	return b
}

// bareInit returns a minimal static x86-64 executable that writes
// "BARE-UP\n" to stdout and powers the machine off: the init of the bare
// kernel+init boot that benchmarks compare the full image against.
func bareInit() []byte {
	code := []byte{
		0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
		0x48, 0x8d, 0x35, 0x22, 0x00, 0x00, 0x00, // lea rsi, [rip+34] (msg)
		0xba, 0x08, 0x00, 0x00, 0x00, // mov edx, 8
		0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
		0x0f, 0x05, // syscall
		0xbf, 0xad, 0xde, 0xe1, 0xfe, // mov edi, 0xfee1dead
		0xbe, 0x69, 0x19, 0x12, 0x28, // mov esi, 672274793
		0xba, 0xdc, 0xfe, 0x21, 0x43, // mov edx, LINUX_REBOOT_CMD_POWER_OFF
		0xb8, 0xa9, 0x00, 0x00, 0x00, // mov eax, 169 (reboot)
		0x0f, 0x05, // syscall
	}
	return elfExec(append(code, "BARE-UP\n"...))
}

// WriteBareInitramfs writes an initramfs whose init prints "BARE-UP" and
// powers off (with /dev/console, so the init has a stdout).
func WriteBareInitramfs(w io.Writer) error {
	t := tree{}
	t.data("init", bareInit(), 0o755)
	t.mkdir("dev", 0o755)
	return t.writeCPIOWith(w, cpio.CharDev("dev/console", 0o600, 5, 1))
}
