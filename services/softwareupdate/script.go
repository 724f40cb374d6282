package softwareupdate

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Install error categories; their text is what upstream reports.
var (
	ErrScript      = errors.New("fail to execute install script")
	ErrExtract     = errors.New("fail to extract module archive")
	ErrMultiple    = errors.New("archive modules cannot have multiple artifacts")
	ErrIllegalPath = errors.New("illegal file path")
)

// ScriptError carries the exit code of a failed install script.
type ScriptError struct {
	Code int
	Err  error
}

func (e *ScriptError) Error() string { return fmt.Sprintf("%v: exit status %d", ErrScript, e.Code) }
func (e *ScriptError) Unwrap() error { return ErrScript }

// ScriptStatus is the content of the script's status file: key=value
// lines, progress (0–100), message and statusCode. It counts only when it
// ends with a newline and has at least one known key.
type ScriptStatus struct {
	Progress   int
	Message    string
	StatusCode string
}

// ParseStatusFile parses a status file; ok is false when it does not
// count (no final LF, no known key, or a bad progress value).
func ParseStatusFile(data []byte) (st ScriptStatus, ok bool) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return st, false
	}
	known := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), "=")
		if !found {
			continue
		}
		switch strings.TrimSpace(k) {
		case "progress":
			p, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || p < 0 || p > 100 {
				return ScriptStatus{}, false
			}
			st.Progress, known = p, true
		case "message":
			st.Message, known = v, true
		case "statusCode":
			st.StatusCode, known = strings.TrimSpace(v), true
		}
	}
	return st, known
}

// Runner runs the install command of a module.
type Runner struct {
	// Command is the configured install command; empty means
	// /bin/sh install.sh in the working directory.
	Command []string
	// Poll is how often the status file is read (upstream watches it with
	// fsnotify; polling gives the same contract without a watcher).
	Poll time.Duration
}

// Run runs the script in dir and calls onStatus whenever the status file
// changes (progress up, or message/statusCode changed). It returns the
// final status file content and a *ScriptError on a non-zero exit.
func (r Runner) Run(ctx context.Context, dir string, onStatus func(ScriptStatus)) (ScriptStatus, error) {
	args := r.Command
	if len(args) == 0 {
		args = []string{"/bin/sh", "install.sh"}
	} else if strings.HasSuffix(args[0], ".sh") {
		args = append([]string{"/bin/sh"}, args...)
	}
	statusPath := filepath.Join(dir, "status")
	_ = os.Remove(statusPath)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return ScriptStatus{}, fmt.Errorf("%w: %w", ErrScript, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // owned by Run; ends with the process
	poll := r.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	var last ScriptStatus
	seen := false
	check := func() {
		data, err := os.ReadFile(statusPath)
		if err != nil {
			return
		}
		st, ok := ParseStatusFile(data)
		if !ok {
			return
		}
		if !seen || st.Progress > last.Progress || st.Message != last.Message || st.StatusCode != last.StatusCode {
			seen, last = true, st
			if onStatus != nil {
				onStatus(st)
			}
		}
	}
	for {
		select {
		case <-t.C:
			check()
		case err := <-done:
			final := last
			if data, rerr := os.ReadFile(statusPath); rerr == nil {
				if st, ok := ParseStatusFile(data); ok {
					final = st
				}
			}
			if ctx.Err() != nil {
				return final, ctx.Err()
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return final, &ScriptError{Code: ee.ExitCode(), Err: err}
			}
			if err != nil {
				return final, fmt.Errorf("%w: %w", ErrScript, err)
			}
			return final, nil
		}
	}
}

// extractArchives unpacks every *.zip and *.tar.gz in dir in place and
// deletes them (SU:internal/storage/archive.go).
func extractArchives(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			continue
		case strings.HasSuffix(e.Name(), ".zip"):
			err = unzip(p, dir)
		case strings.HasSuffix(e.Name(), ".tar.gz"), strings.HasSuffix(e.Name(), ".tgz"):
			err = untgz(p, dir)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrExtract, e.Name(), err)
		}
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return nil
}

func safeJoin(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(name) {
		return "", fmt.Errorf("%q: %w", name, ErrIllegalPath)
	}
	return p, nil
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm()|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func unzip(src, dir string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		p, err := safeJoin(dir, f.Name)
		if err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		err = writeFile(p, rc, f.Mode())
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func untgz(src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := safeJoin(dir, h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(p, tr, os.FileMode(h.Mode)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%q: links and special files are not extracted: %w", h.Name, ErrIllegalPath)
		}
	}
}
