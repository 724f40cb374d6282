package install

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Download error categories.
var (
	// ErrDownload: the download failed and retries are exhausted (or the
	// server answered with a permanent error).
	ErrDownload = errors.New("download failed")
	// ErrSourceChanged: the object on the server changed between requests.
	ErrSourceChanged = errors.New("download source changed")
)

// HTTPOptions tune a resumable download.
type HTTPOptions struct {
	Client *http.Client
	// Retries is how many times a broken transfer is resumed without any
	// progress in between (default 10). Progress resets the count.
	Retries int
	// Backoff returns the wait before retry n (1-based); default 1s·n,
	// at most 30s.
	Backoff func(n int) time.Duration
	// Stall cancels a request that delivers no byte for this long
	// (default 60s), so a dead connection (an IP change on LTE) is
	// noticed and resumed.
	Stall time.Duration
	Log   *slog.Logger
	// Header is added to every request (authorization, device identity).
	Header http.Header
}

// HTTPReader reads a URL from start to end, resuming a broken transfer
// with a Range request from the last byte received. If the server sends
// an ETag or Last-Modified, resumes use If-Range so a changed object is
// detected instead of being spliced.
type HTTPReader struct {
	ctx     context.Context
	url     string
	opts    HTTPOptions
	off     int64
	size    int64 // -1 unknown
	body    io.ReadCloser
	cancel  context.CancelFunc
	timer   *time.Timer
	mu      sync.Mutex
	stalled bool
	ident   string // ETag or Last-Modified of the first response
	failed  int    // consecutive failures without progress
	eof     bool
	// Resumes counts the Range requests made after a broken transfer.
	Resumes int
}

// OpenHTTP starts the download of url. The caller must Close the reader.
func OpenHTTP(ctx context.Context, url string, opts HTTPOptions) (*HTTPReader, error) {
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.Retries == 0 {
		opts.Retries = 10
	}
	if opts.Backoff == nil {
		opts.Backoff = func(n int) time.Duration { return min(time.Duration(n)*time.Second, 30*time.Second) }
	}
	if opts.Stall == 0 {
		opts.Stall = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &HTTPReader{ctx: ctx, url: url, opts: opts, size: -1}
	if err := h.connect(); err != nil {
		return nil, err
	}
	return h, nil
}

// Offset is the number of bytes delivered so far.
func (h *HTTPReader) Offset() int64 { return h.off }

// Size is the object's size, or -1 if the server did not say.
func (h *HTTPReader) Size() int64 { return h.size }

// connect issues a request for the bytes from h.off on.
func (h *HTTPReader) connect() error {
	for {
		err := h.request()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrSourceChanged) || h.ctx.Err() != nil || isPermanent(err) {
			return err
		}
		if err := h.retry(err); err != nil {
			return err
		}
	}
}

// retry waits before the next attempt, or gives up.
func (h *HTTPReader) retry(cause error) error {
	h.failed++
	if h.failed > h.opts.Retries {
		return fmt.Errorf("%s at byte %d after %d retries: %w: %w", h.url, h.off, h.opts.Retries, cause, ErrDownload)
	}
	wait := h.opts.Backoff(h.failed)
	h.opts.Log.Warn("download interrupted, resuming", "url", h.url, "offset", h.off, "retry", h.failed, "wait", wait, "err", cause)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.ctx.Done():
		return h.ctx.Err()
	case <-t.C:
		return nil
	}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

func (h *HTTPReader) request() error {
	ctx, cancel := context.WithCancel(h.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		cancel()
		return permanentError{fmt.Errorf("%w: %w", err, ErrDownload)}
	}
	for k, v := range h.opts.Header {
		req.Header[k] = v
	}
	if h.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(h.off, 10)+"-")
		if h.ident != "" {
			req.Header.Set("If-Range", h.ident)
		}
		h.Resumes++
	}
	h.armStall(cancel)
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		h.disarm()
		cancel()
		if isCertError(err) {
			// Retrying cannot fix an untrusted server certificate.
			return permanentError{fmt.Errorf("%w: %w", err, ErrDownload)}
		}
		return err
	}
	ident := resp.Header.Get("ETag")
	if ident == "" {
		ident = resp.Header.Get("Last-Modified")
	}
	fail := func(err error) error {
		h.disarm()
		resp.Body.Close()
		cancel()
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if h.off > 0 {
			// The server ignored the range (or the object changed).
			if h.ident != "" && ident != h.ident {
				return fail(fmt.Errorf("%s: now %q, was %q: %w", h.url, ident, h.ident, ErrSourceChanged))
			}
			if _, err := io.CopyN(io.Discard, resp.Body, h.off); err != nil {
				return fail(err)
			}
		}
		if resp.ContentLength >= 0 {
			h.size = resp.ContentLength
		}
	case resp.StatusCode == http.StatusPartialContent && h.off > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != h.off {
			return fail(permanentError{fmt.Errorf("%s: Content-Range %q for a request from %d: %w", h.url, resp.Header.Get("Content-Range"), h.off, ErrDownload)})
		}
		if h.size >= 0 && size >= 0 && size != h.size {
			return fail(fmt.Errorf("%s: size now %d, was %d: %w", h.url, size, h.size, ErrSourceChanged))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fail(permanentError{fmt.Errorf("%s: range from %d not satisfiable: %w", h.url, h.off, ErrDownload)})
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fail(fmt.Errorf("%s: %s", h.url, resp.Status))
	default:
		return fail(permanentError{fmt.Errorf("%s: %s: %w", h.url, resp.Status, ErrDownload)})
	}
	if h.off == 0 {
		h.ident = ident
	}
	h.body, h.cancel = resp.Body, cancel
	return nil
}

func (h *HTTPReader) armStall(cancel context.CancelFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stalled = false
	h.timer = time.AfterFunc(h.opts.Stall, func() {
		h.mu.Lock()
		h.stalled = true
		h.mu.Unlock()
		cancel()
	})
}

func (h *HTTPReader) disarm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

func (h *HTTPReader) closeBody() {
	h.disarm()
	if h.body != nil {
		h.body.Close()
		h.body = nil
	}
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// Read implements io.Reader, resuming broken transfers.
func (h *HTTPReader) Read(p []byte) (int, error) {
	if h.eof {
		return 0, io.EOF
	}
	for {
		if h.body == nil {
			if err := h.connect(); err != nil {
				return 0, err
			}
		}
		n, err := h.body.Read(p)
		if n > 0 {
			h.off += int64(n)
			h.failed = 0
			h.mu.Lock()
			if h.timer != nil {
				h.timer.Reset(h.opts.Stall)
			}
			h.mu.Unlock()
		}
		if err == nil {
			return n, nil
		}
		if errors.Is(err, io.EOF) && (h.size < 0 || h.off == h.size) {
			h.eof = true
			h.closeBody()
			return n, io.EOF
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		h.closeBody()
		if h.ctx.Err() != nil {
			return n, h.ctx.Err()
		}
		if n > 0 {
			return n, nil // resume on the next Read
		}
		if rerr := h.retry(err); rerr != nil {
			return 0, rerr
		}
	}
}

// Skip implements bundle.Skipper: the bytes are not downloaded; the next
// Read continues with a Range request from the new offset.
func (h *HTTPReader) Skip(n int64) error {
	if n <= 0 {
		return nil
	}
	h.closeBody()
	h.off += n
	if h.size >= 0 && h.off > h.size {
		return fmt.Errorf("%s: skip to %d beyond %d bytes: %w", h.url, h.off, h.size, ErrDownload)
	}
	h.eof = h.size >= 0 && h.off == h.size
	return nil
}

// Close ends the download.
func (h *HTTPReader) Close() error {
	h.closeBody()
	return nil
}

// parseContentRange parses "bytes START-END/SIZE" (SIZE may be *).
func parseContentRange(v string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

// Open opens a bundle source: an http(s) URL or a file path.
func Open(ctx context.Context, src string, opts HTTPOptions) (io.ReadCloser, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return OpenHTTP(ctx, src, opts)
	}
	return openFile(src)
}
