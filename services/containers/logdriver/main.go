package logdriver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/runtime/v2/logging"

	"github.com/kantofw/kanto/services/internal/cli"
)

// Main is the logging binary the containerd shim starts for a task with the
// container's stdout on fd 3, stderr on fd 4 and a readiness pipe on fd 5.
// Its flags come from the binary:// log URI.
func Main(_ context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "container-management-log")
	file := fs.String("file", "", "json.log path")
	maxSize := fs.Int64("max-size", 100<<20, "rotate at this many bytes")
	maxFiles := fs.Int("max-files", 2, "files kept, the current one included")
	bufSize := fs.Int64("max-buffer-size", 0, "non-blocking mode: bytes buffered before lines are dropped (0: blocking)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return cli.Usagef("--file is required")
	}
	if err := os.MkdirAll(filepath.Dir(*file), 0o755); err != nil {
		return err
	}
	w := &Writer{Path: *file, MaxSize: *maxSize, MaxFiles: *maxFiles}
	var sink LineWriter = w
	var buf *Buffer
	if *bufSize > 0 {
		buf = NewBuffer(w, *bufSize)
		sink = buf
	}
	logging.Run(func(_ context.Context, cfg *logging.Config, ready func() error) error {
		defer w.Close()
		var wg sync.WaitGroup
		for stream, r := range map[string]io.Reader{"stdout": cfg.Stdout, "stderr": cfg.Stderr} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = Copy(sink, stream, r)
			}()
		}
		if buf != nil {
			defer buf.Close()
		}
		if err := ready(); err != nil {
			return err
		}
		// Stops when the shim closes the pipes (the task exited); a SIGTERM
		// cancels the context but the remaining output is still drained.
		wg.Wait()
		return nil
	})
	return nil // not reached: logging.Run exits
}

// LineWriter records one line of a stream; *Writer and *Buffer are ones.
type LineWriter interface {
	Write(stream, line string) error
}

// Copy writes each line of r (up to 16 KiB; longer lines are split) to w.
func Copy(w LineWriter, stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 16<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if werr := w.Write(stream, string(line)); werr != nil {
				return werr
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
