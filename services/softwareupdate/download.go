package softwareupdate

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Download error categories.
var (
	ErrDownload     = errors.New("fail to download module")
	ErrHashMismatch = errors.New("checksum mismatch")
	ErrSizeExceeded = errors.New("file size exceeded")
	ErrNoLink       = errors.New("unknown or missing link")
	ErrNoHash       = errors.New("no supported checksum")
)

// Artifact is one file to fetch, normalised from the payload: the link and
// hash picked by upstream's preference (HTTPS > HTTP > FILE; SHA256 > SHA1 >
// MD5).
type Artifact struct {
	FileName  string `json:"fileName"`
	Size      int64  `json:"size"`
	HashType  string `json:"hashType"`
	HashValue string `json:"hashValue"`
	Link      string `json:"link"`
	Local     bool   `json:"local"`
	Copy      bool   `json:"copy"`
}

// Downloader fetches artifacts over HTTP(S) with retries, Range resume and
// the size guard, and checks their hash.
type Downloader struct {
	Client        *http.Client
	RetryCount    int
	RetryInterval time.Duration
	Log           *slog.Logger
	// sleep is the seam for the retry wait.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewDownloader returns a downloader. serverCert, when set, is a PEM CA
// file that replaces the system pool for HTTPS.
func NewDownloader(retries int, interval time.Duration, serverCert string, log *slog.Logger) (*Downloader, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if serverCert != "" {
		pem, err := os.ReadFile(serverCert)
		if err != nil {
			return nil, fmt.Errorf("serverCert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("serverCert %s holds no certificate", serverCert)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Downloader{Client: &http.Client{Transport: tr}, RetryCount: retries, RetryInterval: interval, Log: log, sleep: sleepCtx}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// TempPrefix names the partial download of a file, as upstream.
const TempPrefix = "_temporary-"

// Fetch downloads a into dir/<fileName>. An existing valid file is reused;
// an existing partial file is resumed with a Range request when the server
// supports it. progress gets the bytes written so far of this file. A hash
// mismatch removes the file and wraps ErrHashMismatch (after the retries,
// each of which starts from zero).
func (d *Downloader) Fetch(ctx context.Context, a Artifact, dir string, progress func(done int64)) error {
	final := filepath.Join(dir, a.FileName)
	if ok, _ := checkHash(final, a); ok {
		progress(a.Size)
		return nil
	}
	_ = os.Remove(final)
	tmp := filepath.Join(dir, TempPrefix+a.FileName)
	var last error
	for attempt := 0; attempt <= d.RetryCount; attempt++ {
		if attempt > 0 {
			d.Log.Info("retrying download", "file", a.FileName, "attempt", attempt, "err", last)
			if err := d.sleep(ctx, d.RetryInterval); err != nil {
				return err
			}
		}
		err := d.fetchOnce(ctx, a, tmp, progress)
		if ctx.Err() != nil {
			return ctx.Err() // the partial file stays for the resume
		}
		if err == nil {
			ok, herr := checkHash(tmp, a)
			if herr != nil {
				return herr
			}
			if ok {
				return os.Rename(tmp, final)
			}
			_ = os.Remove(tmp) // the next attempt starts from zero
			err = fmt.Errorf("%s: %w", a.FileName, ErrHashMismatch)
		}
		if errors.Is(err, ErrSizeExceeded) {
			_ = os.Remove(tmp)
		}
		last = err
	}
	return last
}

func (d *Downloader) fetchOnce(ctx context.Context, a Artifact, tmp string, progress func(int64)) error {
	var offset int64
	if st, err := os.Stat(tmp); err == nil {
		offset = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Link, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDownload, err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := d.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDownload, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: %s: HTTP %s", ErrDownload, a.Link, resp.Status)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	// Resume only when the server says it honoured the range (upstream:
	// Accept-Ranges: bytes and a Content-Range header); else start over.
	if offset > 0 && resp.StatusCode == http.StatusPartialContent &&
		resp.Header.Get("Content-Range") != "" && strings.Contains(resp.Header.Get("Accept-Ranges"), "bytes") {
		flags = os.O_WRONLY | os.O_APPEND
	} else {
		offset = 0
	}
	f, err := os.OpenFile(tmp, flags, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	progress(offset)
	buf := make([]byte, 32*1024)
	written := offset
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if a.Size > 0 && written+int64(n) > a.Size {
				return fmt.Errorf("%s: more than %d bytes: %w", a.FileName, a.Size, ErrSizeExceeded)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			written += int64(n)
			progress(written)
		}
		if rerr == io.EOF {
			return f.Sync()
		}
		if rerr != nil {
			_ = f.Sync()
			return fmt.Errorf("%w: %w", ErrDownload, rerr)
		}
	}
}

func newHash(typ string) (hash.Hash, error) {
	switch strings.ToUpper(typ) {
	case "SHA256":
		return sha256.New(), nil
	case "SHA1":
		return sha1.New(), nil
	case "MD5":
		return md5.New(), nil
	}
	return nil, fmt.Errorf("%q: %w", typ, ErrNoHash)
}

// HashNone is a hash type that checks only existence and size, for
// callers whose content carries its own integrity (signed firmware
// bundles). Payloads never get it: resolve picks SHA256, SHA1 or MD5.
const HashNone = "none"

// checkHash reports whether path exists with a's size and hash.
func checkHash(path string, a Artifact) (bool, error) {
	if a.HashType == HashNone {
		st, err := os.Stat(path)
		return err == nil && (a.Size <= 0 || st.Size() == a.Size), nil
	}
	h, err := newHash(a.HashType)
	if err != nil {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return false, nil
	}
	if a.Size > 0 && n != a.Size {
		return false, nil
	}
	return strings.EqualFold(hex.EncodeToString(h.Sum(nil)), a.HashValue), nil
}

// copyLocal copies (or checks in place) a local artifact.
func copyLocal(a Artifact, dir string, progress func(int64)) (string, error) {
	if !a.Copy {
		ok, err := checkHash(a.Link, a)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("%s: %w", a.Link, ErrHashMismatch)
		}
		progress(a.Size)
		return a.Link, nil
	}
	dst := filepath.Join(dir, a.FileName)
	in, err := os.Open(a.Link)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDownload, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	progress(n)
	if ok, _ := checkHash(dst, a); !ok {
		_ = os.Remove(dst)
		return "", fmt.Errorf("%s: %w", a.Link, ErrHashMismatch)
	}
	return dst, nil
}
