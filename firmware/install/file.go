package install

import (
	"bufio"
	"io"
	"os"
)

type bufferedFile struct {
	*bufio.Reader
	f *os.File
}

func (b bufferedFile) Close() error { return b.f.Close() }

// Skip implements bundle.Skipper: it seeks instead of reading.
func (b bufferedFile) Skip(n int64) error {
	buffered := min(int64(b.Buffered()), n)
	if _, err := b.Discard(int(buffered)); err != nil {
		return err
	}
	if rest := n - buffered; rest > 0 {
		if _, err := b.f.Seek(rest, io.SeekCurrent); err != nil {
			return err
		}
		b.Reset(b.f)
	}
	return nil
}

func openFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return bufferedFile{bufio.NewReaderSize(f, 256<<10), f}, nil
}
