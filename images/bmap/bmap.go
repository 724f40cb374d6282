// Package bmap creates and reads block maps in the bmaptool 2.0 XML format:
// which blocks of a sparse image hold data (with a SHA-256 per range), so a
// flasher writes only those and verifies what it wrote. Blocks outside the
// map are "don't care" (filesystem free space the image builder never
// wrote), exactly as with bmaptool, so `bmaptool copy` can use our maps too.
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Errors, checked with errors.Is.
var (
	// ErrFormat means a malformed or inconsistent block map.
	ErrFormat = errors.New("malformed block map")
	// ErrChecksum means the map's own checksum or a range's data checksum
	// does not match.
	ErrChecksum = errors.New("checksum mismatch")
)

// Range is an inclusive range of blocks holding data.
type Range struct {
	First, Last int64
	SHA256      string // lowercase hex of the range's bytes
}

// Map is a block map.
type Map struct {
	ImageSize int64
	BlockSize int64
	Ranges    []Range
}

// BlocksCount is the number of blocks of the image.
func (m *Map) BlocksCount() int64 { return (m.ImageSize + m.BlockSize - 1) / m.BlockSize }

// MappedBlocks is the number of blocks holding data.
func (m *Map) MappedBlocks() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += r.Last - r.First + 1
	}
	return n
}

// Bytes returns the byte offset and length of a range, clipped to the image.
func (m *Map) Bytes(r Range) (off, n int64) {
	off = r.First * m.BlockSize
	end := min((r.Last+1)*m.BlockSize, m.ImageSize)
	return off, end - off
}

// Create maps the data extents of f (found with SEEK_DATA/SEEK_HOLE, see
// extents_*.go) and hashes them.
func Create(f *os.File, blockSize int64) (*Map, error) {
	if blockSize <= 0 || blockSize&(blockSize-1) != 0 {
		return nil, fmt.Errorf("block size %d: %w", blockSize, ErrFormat)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := &Map{ImageSize: st.Size(), BlockSize: blockSize}
	exts, err := Extents(f, st.Size())
	if err != nil {
		return nil, err
	}
	for _, e := range exts {
		first := e[0] / blockSize
		last := (e[1] - 1) / blockSize
		if n := len(m.Ranges); n > 0 && m.Ranges[n-1].Last >= first-1 {
			m.Ranges[n-1].Last = max(m.Ranges[n-1].Last, last)
			continue
		}
		m.Ranges = append(m.Ranges, Range{First: first, Last: last})
	}
	buf := make([]byte, 1<<20)
	for i := range m.Ranges {
		off, n := m.Bytes(m.Ranges[i])
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, off, n), buf); err != nil {
			return nil, err
		}
		m.Ranges[i].SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return m, nil
}

type xmlRange struct {
	Chksum string `xml:"chksum,attr"`
	Blocks string `xml:",chardata"`
}

type xmlMap struct {
	XMLName           xml.Name   `xml:"bmap"`
	Version           string     `xml:"version,attr"`
	ImageSize         string     `xml:"ImageSize"`
	BlockSize         string     `xml:"BlockSize"`
	BlocksCount       string     `xml:"BlocksCount"`
	MappedBlocksCount string     `xml:"MappedBlocksCount"`
	ChecksumType      string     `xml:"ChecksumType"`
	BmapFileChecksum  string     `xml:"BmapFileChecksum"`
	Ranges            []xmlRange `xml:"BlockMap>Range"`
}

var zeroSum = strings.Repeat("0", 64)

// Marshal returns the XML block map, including its own checksum (the
// SHA-256 of the file with the checksum field set to 64 zeros, as bmaptool
// computes it).
func (m *Map) Marshal() []byte {
	render := func(sum string) []byte {
		var b bytes.Buffer
		b.WriteString("<?xml version=\"1.0\" ?>\n<!-- Block map of a Kanto disk image (bmaptool format 2.0). -->\n")
		b.WriteString("<bmap version=\"2.0\">\n")
		fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n", m.ImageSize)
		fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n", m.BlockSize)
		fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n", m.BlocksCount())
		fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n", m.MappedBlocks())
		b.WriteString("    <ChecksumType> sha256 </ChecksumType>\n")
		fmt.Fprintf(&b, "    <BmapFileChecksum> %s </BmapFileChecksum>\n", sum)
		b.WriteString("    <BlockMap>\n")
		for _, r := range m.Ranges {
			if r.First == r.Last {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", r.SHA256, r.First)
			} else {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", r.SHA256, r.First, r.Last)
			}
		}
		b.WriteString("    </BlockMap>\n</bmap>\n")
		return b.Bytes()
	}
	s := sha256.Sum256(render(zeroSum))
	return render(hex.EncodeToString(s[:]))
}

// Parse reads an XML block map (version 2.x) and checks its own checksum
// and consistency: ranges sorted, disjoint, inside the image, counts right.
func Parse(data []byte) (*Map, error) {
	var x xmlMap
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if !strings.HasPrefix(x.Version, "2.") {
		return nil, fmt.Errorf("version %q: %w", x.Version, ErrFormat)
	}
	if t := strings.TrimSpace(x.ChecksumType); t != "sha256" {
		return nil, fmt.Errorf("checksum type %q: %w", t, ErrFormat)
	}
	num := func(name, s string) (int64, error) {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%s %q: %w", name, s, ErrFormat)
		}
		return v, nil
	}
	m := &Map{}
	var err error
	if m.ImageSize, err = num("ImageSize", x.ImageSize); err != nil {
		return nil, err
	}
	if m.BlockSize, err = num("BlockSize", x.BlockSize); err != nil {
		return nil, err
	}
	if m.BlockSize == 0 || m.BlockSize&(m.BlockSize-1) != 0 || m.BlockSize > 1<<24 {
		return nil, fmt.Errorf("block size %d: %w", m.BlockSize, ErrFormat)
	}
	sum := strings.TrimSpace(x.BmapFileChecksum)
	if len(sum) != 64 {
		return nil, fmt.Errorf("bmap checksum %q: %w", sum, ErrFormat)
	}
	zeroed := bytes.Replace(data, []byte(sum), []byte(zeroSum), 1)
	if s := sha256.Sum256(zeroed); hex.EncodeToString(s[:]) != strings.ToLower(sum) {
		return nil, fmt.Errorf("block map file: %w", ErrChecksum)
	}
	blocks := m.BlocksCount()
	for _, xr := range x.Ranges {
		a, b, isRange := strings.Cut(strings.TrimSpace(xr.Blocks), "-")
		first, err := num("range", a)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = num("range", b); err != nil {
				return nil, err
			}
		}
		if last < first || last >= blocks {
			return nil, fmt.Errorf("range %d-%d of %d blocks: %w", first, last, blocks, ErrFormat)
		}
		if n := len(m.Ranges); n > 0 && first <= m.Ranges[n-1].Last {
			return nil, fmt.Errorf("range %d-%d not after %d: %w", first, last, m.Ranges[n-1].Last, ErrFormat)
		}
		if _, err := hex.DecodeString(xr.Chksum); err != nil || len(xr.Chksum) != 64 {
			return nil, fmt.Errorf("range checksum %q: %w", xr.Chksum, ErrFormat)
		}
		m.Ranges = append(m.Ranges, Range{First: first, Last: last, SHA256: strings.ToLower(xr.Chksum)})
	}
	if c, err := num("BlocksCount", x.BlocksCount); err != nil || c != blocks {
		return nil, fmt.Errorf("BlocksCount %q, want %d: %w", x.BlocksCount, blocks, ErrFormat)
	}
	if c, err := num("MappedBlocksCount", x.MappedBlocksCount); err != nil || c != m.MappedBlocks() {
		return nil, fmt.Errorf("MappedBlocksCount %q, want %d: %w", x.MappedBlocksCount, m.MappedBlocks(), ErrFormat)
	}
	return m, nil
}
