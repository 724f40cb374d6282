package bundle

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Header is the unverified start of a bundle.
type Header struct {
	Manifest    *Manifest
	RawManifest []byte
	Signature   *Signature
	RawSig      []byte
	// Size is the header's length in bytes (where the payloads start).
	Size int64
}

// ReadHeader reads the magic, manifest and signature block, without
// verifying anything but their form.
func ReadHeader(r io.Reader) (*Header, error) {
	var magic [len(Magic) + 4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("header: %w: %w", err, truncOr(err, ErrFormat))
	}
	if string(magic[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("not a Kanto bundle (magic %q): %w", magic[:len(Magic)], ErrFormat)
	}
	h := &Header{}
	mlen := binary.BigEndian.Uint32(magic[len(Magic):])
	if mlen == 0 || mlen > MaxManifestSize {
		return nil, fmt.Errorf("manifest length %d: %w", mlen, ErrFormat)
	}
	h.RawManifest = make([]byte, mlen)
	if _, err := io.ReadFull(r, h.RawManifest); err != nil {
		return nil, fmt.Errorf("manifest: %w: %w", err, truncOr(err, ErrFormat))
	}
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("signature length: %w: %w", err, truncOr(err, ErrFormat))
	}
	slen := binary.BigEndian.Uint32(l[:])
	if slen == 0 || slen > MaxSignatureSize {
		return nil, fmt.Errorf("signature length %d: %w", slen, ErrFormat)
	}
	h.RawSig = make([]byte, slen)
	if _, err := io.ReadFull(r, h.RawSig); err != nil {
		return nil, fmt.Errorf("signature: %w: %w", err, truncOr(err, ErrFormat))
	}
	h.Size = int64(len(Magic)) + 8 + int64(mlen) + int64(slen)
	var err error
	if h.Signature, err = ParseSignature(h.RawSig); err != nil {
		return nil, err
	}
	if h.Manifest, err = ParseManifest(h.RawManifest); err != nil {
		return nil, err
	}
	return h, nil
}

func truncOr(err, other error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return other
}

// VerifyOptions say what a bundle must satisfy.
type VerifyOptions struct {
	Keyring *Keyring
	// Compatible, if set, must be in the manifest's compatible list.
	Compatible string
	// Now is the time certificates must be valid at (default time.Now).
	Now time.Time
}

// Verify checks the header's signature and compatibility.
func (h *Header) Verify(opts VerifyOptions) (*Signer, error) {
	if opts.Keyring == nil {
		return nil, fmt.Errorf("no keyring: %w", ErrUntrusted)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	who, err := opts.Keyring.Verify(h.RawManifest, h.Signature, now)
	if err != nil {
		return nil, err
	}
	if opts.Compatible != "" && !h.Manifest.IsCompatible(opts.Compatible) {
		return nil, fmt.Errorf("bundle for %q, this board is %q: %w", h.Manifest.Compatible, opts.Compatible, ErrIncompatible)
	}
	return who, nil
}

// Reader hands out the verified images of a bundle, in manifest order.
type Reader struct {
	Header *Header
	Signer *Signer
	r      io.Reader
	next   int
	cur    *ImageReader
	// startChunk is where the next image starts (ResumeAt).
	startChunk int
	started    bool
	buf        []byte
}

// Open reads and verifies the header of the bundle in r. No payload byte
// has been read when it returns.
func Open(r io.Reader, opts VerifyOptions) (*Reader, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	who, err := h.Verify(opts)
	if err != nil {
		return nil, err
	}
	return &Reader{Header: h, Signer: who, r: r}, nil
}

// Manifest is the verified manifest.
func (b *Reader) Manifest() *Manifest { return b.Header.Manifest }

// Next returns the next image and a reader of its verified, uncompressed
// bytes, or io.EOF after the last image once the stream is checked to end
// there. The previous image must have been read to its end.
func (b *Reader) Next() (*Image, *ImageReader, error) {
	if b.cur != nil && !b.cur.done {
		return nil, nil, fmt.Errorf("image %q not read to the end", b.cur.im.Class)
	}
	m := b.Header.Manifest
	if b.next == len(m.Images) {
		var one [1]byte
		n, err := io.ReadFull(b.r, one[:])
		if n > 0 {
			return nil, nil, ErrTrailing
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		return nil, nil, io.EOF
	}
	im := &m.Images[b.next]
	b.next++
	if int64(cap(b.buf)) < im.ChunkSize {
		b.buf = make([]byte, im.ChunkSize)
	}
	cr := &chunkReader{r: b.r, im: im, buf: b.buf[:im.ChunkSize]}
	ir := &ImageReader{im: im, chunks: cr}
	b.started = true
	if k := b.startChunk; k > 0 {
		b.startChunk = 0
		cr.idx, cr.off = k, int64(k)*im.ChunkSize
		ir.n, ir.start = cr.off, cr.off
	}
	switch im.Compression {
	case CompressionNone:
		ir.out = cr
	case CompressionGzip:
		ir.lazy = func() (io.Reader, error) { return gzip.NewReader(cr) }
		ir.hash = sha256.New()
	case CompressionZstd:
		ir.lazy = func() (io.Reader, error) {
			d, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(16<<20))
			if err != nil {
				return nil, err
			}
			ir.closer = d.Close
			return d, nil
		}
		ir.hash = sha256.New()
	}
	b.cur = ir
	return im, ir, nil
}

// ImageReader reads one image's bytes. Every byte it returns comes from a
// chunk whose hash matched; at the end it checks the image's size and (for
// compressed images) SHA-256, returning ErrCorrupt instead of io.EOF.
type ImageReader struct {
	im     *Image
	chunks *chunkReader
	out    io.Reader
	lazy   func() (io.Reader, error)
	closer func()
	hash   hash.Hash
	n      int64
	start  int64 // first byte offset (ResumeAt)
	done   bool
	err    error
}

// Read implements io.Reader.
func (ir *ImageReader) Read(p []byte) (int, error) {
	if ir.err != nil {
		return 0, ir.err
	}
	if ir.out == nil {
		out, err := ir.lazy()
		if err != nil {
			if ir.chunks.err != nil {
				err = ir.chunks.err
			} else {
				err = fmt.Errorf("%w: %w", err, ErrCorrupt)
			}
			ir.err = fmt.Errorf("image %q: %w", ir.im.Class, err)
			return 0, ir.err
		}
		ir.out = out
	}
	if rem := ir.im.Size - ir.n; int64(len(p)) > rem+1 {
		p = p[:rem+1] // one more byte than expected reveals an oversize image
	}
	n, err := ir.out.Read(p)
	if n > 0 {
		if ir.n+int64(n) > ir.im.Size {
			ir.err = fmt.Errorf("image %q decompresses to more than %d bytes: %w", ir.im.Class, ir.im.Size, ErrCorrupt)
			return 0, ir.err
		}
		ir.n += int64(n)
		if ir.hash != nil {
			ir.hash.Write(p[:n])
		}
	}
	if errors.Is(err, io.EOF) {
		ir.finish()
		if ir.err != nil {
			return n, ir.err
		}
		return n, io.EOF
	}
	if err != nil {
		if cerr := ir.chunks.err; cerr != nil || ir.im.Compression == CompressionNone {
			// The stream itself failed (truncated, corrupt chunk, I/O).
			if cerr == nil {
				cerr = err
			}
			ir.err = fmt.Errorf("image %q: %w", ir.im.Class, cerr)
		} else {
			// The decompressor rejected verified bytes.
			ir.err = fmt.Errorf("image %q: %w: %w", ir.im.Class, err, ErrCorrupt)
		}
		return n, ir.err
	}
	return n, nil
}

func (ir *ImageReader) finish() {
	ir.done = true
	if ir.closer != nil {
		ir.closer()
	}
	// The decompressor may stop before the last stored byte; drain the
	// (verified) rest, which must be empty.
	if ir.chunks.off < ir.im.StoredSize {
		var scratch [512]byte
		n, err := io.ReadFull(ir.chunks, scratch[:])
		if n > 0 {
			ir.err = fmt.Errorf("image %q: %d stored bytes after the compressed stream: %w", ir.im.Class, n, ErrCorrupt)
			return
		}
		if err != nil && !errors.Is(err, io.EOF) {
			ir.err = err
			return
		}
	}
	if ir.n != ir.im.Size {
		ir.err = fmt.Errorf("image %q: %d bytes, manifest says %d: %w", ir.im.Class, ir.n, ir.im.Size, ErrCorrupt)
		return
	}
	if ir.hash != nil && hex.EncodeToString(ir.hash.Sum(nil)) != ir.im.SHA256 {
		ir.err = fmt.Errorf("image %q: sha256 mismatch: %w", ir.im.Class, ErrCorrupt)
	}
}

// Offset is the image offset of the first byte this reader returns: 0,
// or where ResumeAt positioned it.
func (ir *ImageReader) Offset() int64 { return ir.start }

// Written is the number of image bytes returned so far (counting from 0,
// including the part skipped by ResumeAt).
func (ir *ImageReader) Written() int64 { return ir.n }

// chunkReader returns the stored bytes of one image, a verified chunk at a
// time.
type chunkReader struct {
	r     io.Reader
	im    *Image
	buf   []byte
	avail []byte
	off   int64 // stored bytes consumed from r
	idx   int
	err   error // first error, sticky
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

func (c *chunkReader) read(p []byte) (int, error) {
	if len(c.avail) == 0 {
		if c.off == c.im.StoredSize {
			return 0, io.EOF
		}
		n := min(c.im.ChunkSize, c.im.StoredSize-c.off)
		chunk := c.buf[:n]
		if _, err := io.ReadFull(c.r, chunk); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("chunk %d: %w", c.idx, ErrTruncated)
			}
			return 0, err
		}
		sum := sha256.Sum256(chunk)
		var want [sha256.Size]byte
		hex.Decode(want[:], []byte(c.im.Chunks[c.idx]))
		if !bytes.Equal(sum[:], want[:]) {
			return 0, fmt.Errorf("chunk %d: sha256 mismatch: %w", c.idx, ErrCorrupt)
		}
		c.idx++
		c.off += n
		c.avail = chunk
	}
	n := copy(p, c.avail)
	c.avail = c.avail[n:]
	return n, nil
}

// WriteTo lets io.Copy move whole verified chunks without an extra buffer.
func (ir *ImageReader) WriteTo(w io.Writer) (int64, error) {
	if ir.im.Compression != CompressionNone || ir.err != nil || ir.done {
		return io.CopyBuffer(w, onlyReader{ir}, make([]byte, 256<<10))
	}
	var total int64
	for {
		if len(ir.chunks.avail) == 0 {
			if _, err := ir.chunks.Read(nil); err != nil {
				if errors.Is(err, io.EOF) {
					ir.finish()
					return total, ir.err
				}
				ir.err = fmt.Errorf("image %q: %w", ir.im.Class, err)
				return total, ir.err
			}
		}
		n, err := w.Write(ir.chunks.avail)
		ir.chunks.avail = ir.chunks.avail[n:]
		ir.n += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// Skipper is a bundle source that can move forward without reading: an
// HTTP download reconnects with a Range request, a file seeks.
type Skipper interface {
	Skip(n int64) error
}

// ResumeAt positions the reader at chunk of image, as if everything before
// had been read and verified (the caller has checked those bytes against
// the manifest's chunk hashes, e.g. on the target slot). It must be called
// before the first Next. A compressed image can only be resumed at chunk
// 0. image == len(images) skips all payloads (Next then checks the end).
func (b *Reader) ResumeAt(image, chunk int) error {
	m := b.Header.Manifest
	if b.started || image < 0 || image > len(m.Images) {
		return fmt.Errorf("resume at image %d: %w", image, ErrFormat)
	}
	var skip int64
	for _, im := range m.Images[:image] {
		skip += im.StoredSize
	}
	if image < len(m.Images) {
		im := m.Images[image]
		if chunk < 0 || chunk >= len(im.Chunks) || (chunk > 0 && im.Compression != CompressionNone) {
			return fmt.Errorf("resume at chunk %d of %q: %w", chunk, im.Class, ErrFormat)
		}
		skip += int64(chunk) * im.ChunkSize
	} else if chunk != 0 {
		return fmt.Errorf("resume after the last image at chunk %d: %w", chunk, ErrFormat)
	}
	if skip > 0 {
		if s, ok := b.r.(Skipper); ok {
			if err := s.Skip(skip); err != nil {
				return err
			}
		} else if n, err := io.CopyN(io.Discard, b.r, skip); err != nil {
			return fmt.Errorf("skip %d bytes (got %d): %w: %w", skip, n, err, truncOr(err, ErrFormat))
		}
	}
	b.next, b.startChunk, b.started = image, chunk, true
	return nil
}

// VerifiedPrefix returns how many leading chunks of an uncompressed image
// the reader r (e.g. the target slot) already holds; for a compressed image
// it returns all chunks if the first Size bytes hash to the image's
// SHA-256, else 0. Reads are bounded by one chunk.
func VerifiedPrefix(r io.ReaderAt, im *Image) (int, error) {
	buf := make([]byte, im.ChunkSize)
	if im.Compression != CompressionNone {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, im.Size)); err != nil {
			return 0, err
		}
		if hex.EncodeToString(h.Sum(nil)) == im.SHA256 {
			return len(im.Chunks), nil
		}
		return 0, nil
	}
	for k := range im.Chunks {
		n := min(im.ChunkSize, im.StoredSize-int64(k)*im.ChunkSize)
		got, err := r.ReadAt(buf[:n], int64(k)*im.ChunkSize)
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				return k, nil
			}
			return k, err
		}
		sum := sha256.Sum256(buf[:n])
		if hex.EncodeToString(sum[:]) != im.Chunks[k] {
			return k, nil
		}
	}
	return len(im.Chunks), nil
}
