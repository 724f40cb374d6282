package files

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// File is one local file opened for upload. Its size and modification time
// are taken at Open; readers return ErrChanged when the file no longer
// matches them, so a provider never completes an upload of a file that
// changed under it.
type File struct {
	Path  string // absolute path as selected
	f     *os.File
	size  int64
	mtime time.Time
	ident string
	limit *Limiter

	mu  sync.Mutex
	md5 []byte
}

// Open opens path for upload after checking it against p (requested is the
// glob the trigger used). The last path element is opened without following
// a symlink, and the opened descriptor is checked again through /proc, so a
// link swapped in after selection is refused. limit may be nil.
func Open(p Policy, path, requested string, limit *Limiter) (*File, error) {
	if err := p.Allowed(path, requested); err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrChanged, err)
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if fdPath, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil {
		if err := p.allowedReal(path, fdPath, requested); err != nil {
			f.Close()
			return nil, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrNotPermitted)
	}
	return &File{Path: path, f: f, size: fi.Size(), mtime: fi.ModTime(), ident: identity(fi), limit: limit}, nil
}

// Identity is a short token for this version of the file (device, inode,
// size and modification time): a later upload of the same, unchanged file
// has the same identity, so it can pick up parts an interrupted upload
// left on the server.
func (f *File) Identity() string { return f.ident }

func identity(fi os.FileInfo) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d", fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		fmt.Fprintf(h, "/%d/%d", st.Dev, st.Ino)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Size is the size at Open.
func (f *File) Size() int64 { return f.size }

// Name is the base name.
func (f *File) Name() string { return filepath.Base(f.Path) }

// Close closes the descriptor.
func (f *File) Close() error { return f.f.Close() }

// Verify reports ErrChanged when the file at Path is gone, replaced, or its
// size or modification time differs from Open.
func (f *File) Verify() error {
	fi, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w: %w", f.Path, ErrChanged, err)
	}
	if fi.Size() != f.size {
		return fmt.Errorf("%s: size changed from %d to %d bytes: %w", f.Path, f.size, fi.Size(), ErrChanged)
	}
	if !fi.ModTime().Equal(f.mtime) {
		return fmt.Errorf("%s: modified while uploading: %w", f.Path, ErrChanged)
	}
	pi, err := os.Stat(f.Path)
	if err != nil {
		return fmt.Errorf("%s: vanished while uploading: %w", f.Path, ErrChanged)
	}
	if !os.SameFile(fi, pi) {
		return fmt.Errorf("%s: replaced while uploading: %w", f.Path, ErrChanged)
	}
	return nil
}

// Remove deletes the file if Path still names the file that was uploaded.
func (f *File) Remove() error {
	fi, err := f.f.Stat()
	if err != nil {
		return err
	}
	pi, err := os.Lstat(f.Path)
	if err != nil {
		return err
	}
	if !os.SameFile(fi, pi) {
		return fmt.Errorf("%s: not removed, it was replaced: %w", f.Path, ErrChanged)
	}
	return os.Remove(f.Path)
}

// MD5 returns the MD5 digest of the whole file (read once, then cached).
func (f *File) MD5() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.md5 != nil {
		return f.md5, nil
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(f.f, 0, f.size)); err != nil {
		return nil, fmt.Errorf("checksum %s: %w", f.Path, err)
	}
	f.md5 = h.Sum(nil)
	return f.md5, nil
}

// MD5Base64 is MD5 in the Content-MD5 header form.
func (f *File) MD5Base64() (string, error) {
	sum, err := f.MD5()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sum), nil
}

// Section returns a reader of n bytes at off. It is rate-limited by the
// file's limiter, counts what it read into *read (may be nil), and at its
// end checks Verify, so a body that ends on a changed file fails instead of
// completing.
func (f *File) Section(off, n int64) *Section {
	return &Section{f: f, sr: io.NewSectionReader(f.f, off, n), end: off+n == f.size}
}

// Section is a seekable, verified reader of part of a File.
type Section struct {
	f   *File
	sr  *io.SectionReader
	end bool // the section ends at the end of the file
	// OnRead, if set, is called with the count of every read.
	OnRead func(n int)
}

// Read implements io.Reader.
func (s *Section) Read(p []byte) (int, error) {
	if s.f.limit != nil && len(p) > s.f.limit.burst {
		p = p[:s.f.limit.burst]
	}
	n, err := s.sr.Read(p)
	if s.end && n > 0 {
		// Hold the last bytes back until the file is checked, so a
		// receiver never gets a complete body of a changed file.
		if pos, _ := s.sr.Seek(0, io.SeekCurrent); pos == s.sr.Size() {
			if verr := s.f.Verify(); verr != nil {
				return 0, verr
			}
		}
	}
	if n > 0 {
		if s.f.limit != nil {
			s.f.limit.wait(n)
		}
		if s.OnRead != nil {
			s.OnRead(n)
		}
	}
	if errors.Is(err, io.EOF) {
		if verr := s.f.Verify(); verr != nil {
			return n, verr
		}
	}
	if err == nil && n == 0 && len(p) > 0 {
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

// Seek implements io.Seeker so SDKs can rewind a body to retry it.
func (s *Section) Seek(off int64, whence int) (int64, error) { return s.sr.Seek(off, whence) }

// Size is the section length.
func (s *Section) Size() int64 { return s.sr.Size() }

// ReadAt implements io.ReaderAt (no rate limit, used for checksums).
func (s *Section) ReadAt(p []byte, off int64) (int, error) { return s.sr.ReadAt(p, off) }

// MD5 returns the digest of the section.
func (s *Section) MD5() ([]byte, error) {
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(s.sr, 0, s.sr.Size())); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
