// Package bundle reads, writes, signs and verifies Kanto firmware bundles,
// the streamable format specified in firmware/FORMAT.md: a magic, a signed
// JSON manifest, a signature block, then the image payloads cut in chunks
// whose SHA-256 the manifest lists. A Reader verifies the signature before
// it hands out any payload byte and verifies every chunk before returning
// any byte of it, so a consumer that writes what it reads never writes
// unverified data.
package bundle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Magic starts every bundle.
const Magic = "KANTOFW1"

// Limits of the format.
const (
	MaxManifestSize  = 4 << 20
	MaxSignatureSize = 64 << 10
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 16 << 20
	DefaultChunkSize = 1 << 20
)

// Compression names.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Sentinel error categories. Every rejection of a bundle wraps one of them.
var (
	// ErrFormat: not a bundle, or a malformed manifest or signature block.
	ErrFormat = errors.New("malformed bundle")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("bad bundle signature")
	// ErrUntrusted: the signer is not trusted by the keyring (unknown key,
	// certificate chain not to a keyring CA, expired, wrong usage).
	ErrUntrusted = errors.New("untrusted bundle signer")
	// ErrIncompatible: the bundle is not for this board.
	ErrIncompatible = errors.New("bundle not compatible with this board")
	// ErrCorrupt: a payload chunk or image hash does not match the manifest.
	ErrCorrupt = errors.New("bundle payload corrupt")
	// ErrTruncated: the stream ended before the last payload byte.
	ErrTruncated = errors.New("bundle truncated")
	// ErrTrailing: bytes follow the last payload.
	ErrTrailing = errors.New("bundle has trailing data")
)

// Manifest is the signed description of a bundle.
type Manifest struct {
	Format      int       `json:"format"`
	Compatible  []string  `json:"compatible"`
	Version     string    `json:"version"`
	Description string    `json:"description,omitempty"`
	Build       string    `json:"build,omitempty"`
	Created     time.Time `json:"created"`
	Images      []Image   `json:"images"`
}

// Image is one payload of a bundle, destined for one slot class.
type Image struct {
	Class       string   `json:"class"`
	Filename    string   `json:"filename,omitempty"`
	Size        int64    `json:"size"`
	SHA256      string   `json:"sha256"`
	Compression string   `json:"compression"`
	StoredSize  int64    `json:"storedSize"`
	ChunkSize   int64    `json:"chunkSize"`
	Chunks      []string `json:"chunks"`
}

// Compatible reports whether board is in the manifest's compatible list.
func (m *Manifest) IsCompatible(board string) bool {
	for _, c := range m.Compatible {
		if c == board {
			return true
		}
	}
	return false
}

// Image returns the image of class, or nil.
func (m *Manifest) Image(class string) *Image {
	for i := range m.Images {
		if m.Images[i].Class == class {
			return &m.Images[i]
		}
	}
	return nil
}

// PayloadSize is the number of payload bytes after the header.
func (m *Manifest) PayloadSize() int64 {
	var n int64
	for _, im := range m.Images {
		n += im.StoredSize
	}
	return n
}

// ParseManifest decodes and validates manifest bytes. Unknown fields are
// rejected.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w: %w", err, ErrFormat)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("manifest: data after the JSON object: %w", ErrFormat)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the rules of FORMAT.md §2.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("manifest: "+format+": %w", append(args, ErrFormat)...)
	}
	if m.Format != 1 {
		return bad("format %d, want 1", m.Format)
	}
	if len(m.Compatible) == 0 {
		return bad("empty compatible list")
	}
	for _, c := range m.Compatible {
		if c == "" {
			return bad("empty compatible name")
		}
	}
	if len(m.Images) == 0 {
		return bad("no images")
	}
	seen := map[string]bool{}
	for i, im := range m.Images {
		if im.Class == "" || seen[im.Class] {
			return bad("image %d: empty or duplicate class %q", i, im.Class)
		}
		seen[im.Class] = true
		if im.Size <= 0 || im.StoredSize <= 0 {
			return bad("image %q: sizes must be positive", im.Class)
		}
		if !isHash(im.SHA256) {
			return bad("image %q: sha256 %q", im.Class, im.SHA256)
		}
		switch im.Compression {
		case CompressionNone:
			if im.StoredSize != im.Size {
				return bad("image %q: uncompressed but storedSize %d != size %d", im.Class, im.StoredSize, im.Size)
			}
		case CompressionGzip, CompressionZstd:
		default:
			return bad("image %q: compression %q", im.Class, im.Compression)
		}
		if im.ChunkSize < MinChunkSize || im.ChunkSize > MaxChunkSize || im.ChunkSize&(im.ChunkSize-1) != 0 {
			return bad("image %q: chunkSize %d", im.Class, im.ChunkSize)
		}
		if want := (im.StoredSize + im.ChunkSize - 1) / im.ChunkSize; int64(len(im.Chunks)) != want {
			return bad("image %q: %d chunk hashes, want %d", im.Class, len(im.Chunks), want)
		}
		for _, h := range im.Chunks {
			if !isHash(h) {
				return bad("image %q: chunk hash %q", im.Class, h)
			}
		}
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
