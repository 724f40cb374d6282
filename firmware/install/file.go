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

func openFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return bufferedFile{bufio.NewReaderSize(f, 256<<10), f}, nil
}
