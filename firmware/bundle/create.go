package bundle

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Source is one image to put in a bundle.
type Source struct {
	Class string
	Path  string
}

// CreateOptions are the manifest fields and encoding choices of Create.
type CreateOptions struct {
	Compatible  []string
	Version     string
	Description string
	Build       string
	Created     time.Time
	// Compression: CompressionNone (default), CompressionGzip or CompressionZstd.
	Compression string
	// ChunkSize defaults to DefaultChunkSize.
	ChunkSize int64
	// TempDir holds compressed payloads while their hashes are computed
	// (default os.TempDir()).
	TempDir string
	// Progress, if set, receives the bytes processed so far out of the
	// total work (every image is read once to hash, once to write).
	Progress func(done, total int64)
}

// Create writes a signed bundle of srcs to w and returns its manifest. Each
// image is read twice (hashes first, then the payload); compressed images
// are compressed once into a temp file.
func Create(ctx context.Context, w io.Writer, signer *KeySigner, opts CreateOptions, srcs []Source) (*Manifest, error) {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Compression == "" {
		opts.Compression = CompressionNone
	}
	if opts.Created.IsZero() {
		opts.Created = time.Now().UTC()
	}
	var total int64
	for _, src := range srcs {
		if fi, err := os.Stat(src.Path); err == nil {
			total += 2 * fi.Size()
		}
	}
	pc := &progressCounter{fn: opts.Progress, total: total}
	m := &Manifest{Format: 1, Compatible: opts.Compatible, Version: opts.Version, Description: opts.Description, Build: opts.Build, Created: opts.Created.UTC().Truncate(time.Second)}
	payloads := make([]string, len(srcs))
	for i, src := range srcs {
		im, payload, cleanup, err := prepare(ctx, src, opts, pc)
		if cleanup != nil {
			defer cleanup()
		}
		if err != nil {
			return nil, fmt.Errorf("image %s=%s: %w", src.Class, src.Path, err)
		}
		m.Images = append(m.Images, *im)
		payloads[i] = payload
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mb, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(mb)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sb, err := json.Marshal(sig)
	if err != nil {
		return nil, err
	}
	if err := writeHeader(w, mb, sb); err != nil {
		return nil, err
	}
	for i, p := range payloads {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(w, ctxReader{ctx, f, pc})
		f.Close()
		if err != nil {
			return nil, err
		}
		if n != m.Images[i].StoredSize {
			return nil, fmt.Errorf("%s changed while bundling (%d bytes, hashed %d)", p, n, m.Images[i].StoredSize)
		}
	}
	return m, nil
}

func writeHeader(w io.Writer, manifest, sig []byte) error {
	hdr := make([]byte, 0, len(Magic)+8+len(manifest)+len(sig))
	hdr = append(hdr, Magic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(manifest)))
	hdr = append(hdr, manifest...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(sig)))
	hdr = append(hdr, sig...)
	_, err := w.Write(hdr)
	return err
}

// prepare hashes (and compresses) one image; payload is the file whose
// bytes go into the bundle.
func prepare(ctx context.Context, src Source, opts CreateOptions, pc *progressCounter) (im *Image, payload string, cleanup func(), err error) {
	im = &Image{Class: src.Class, Filename: filepath.Base(src.Path), Compression: opts.Compression, ChunkSize: opts.ChunkSize}
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, "", nil, err
	}
	defer f.Close()
	payload = src.Path
	if opts.Compression != CompressionNone {
		tmp, err := os.CreateTemp(opts.TempDir, "kanto-bundle-*")
		if err != nil {
			return nil, "", nil, err
		}
		cleanup = func() { os.Remove(tmp.Name()) }
		payload = tmp.Name()
		whole := sha256.New()
		var zw io.WriteCloser
		switch opts.Compression {
		case CompressionGzip:
			zw = gzip.NewWriter(tmp)
		case CompressionZstd:
			// A 4 MiB window bounds the device's decoder memory.
			zw, err = zstd.NewWriter(tmp, zstd.WithWindowSize(4<<20), zstd.WithEncoderConcurrency(1))
			if err != nil {
				tmp.Close()
				return nil, "", cleanup, err
			}
		default:
			tmp.Close()
			return nil, "", cleanup, fmt.Errorf("compression %q: %w", opts.Compression, ErrFormat)
		}
		n, err := io.Copy(io.MultiWriter(zw, whole), ctxReader{ctx, f, pc})
		if err == nil {
			err = zw.Close()
		}
		if err == nil {
			err = tmp.Close()
		} else {
			tmp.Close()
		}
		if err != nil {
			return nil, "", cleanup, err
		}
		im.Size, im.SHA256 = n, hex.EncodeToString(whole.Sum(nil))
		if f, err = os.Open(payload); err != nil {
			return nil, "", cleanup, err
		}
		defer f.Close()
	}
	whole := sha256.New()
	buf := make([]byte, opts.ChunkSize)
	for {
		var count *progressCounter
		if opts.Compression == CompressionNone {
			count = pc // a compressed payload was counted while compressing
		}
		n, err := io.ReadFull(ctxReader{ctx, f, count}, buf)
		if n > 0 {
			sum := sha256.Sum256(buf[:n])
			im.Chunks = append(im.Chunks, hex.EncodeToString(sum[:]))
			im.StoredSize += int64(n)
			if opts.Compression == CompressionNone {
				whole.Write(buf[:n])
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, "", cleanup, err
		}
	}
	if opts.Compression == CompressionNone {
		im.Size, im.SHA256 = im.StoredSize, hex.EncodeToString(whole.Sum(nil))
	}
	return im, payload, cleanup, nil
}

// ctxReader stops a long copy when ctx is done and counts progress.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	pc  *progressCounter // may be nil
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.pc.add(int64(n))
	return n, err
}

type progressCounter struct {
	fn          func(done, total int64)
	done, total int64
}

func (p *progressCounter) add(n int64) {
	if p == nil || p.fn == nil {
		return
	}
	p.done += n
	p.fn(min(p.done, p.total), p.total)
}
