// Package httpup uploads a file with one HTTP PUT or POST (upstream's
// "generic" provider). A plain request cannot be resumed, so after a dropped
// connection the request is sent again from the start.
package httpup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
)

// Option keys.
const (
	KeyURL          = "https.url"
	KeyMethod       = "https.method"
	KeyHeaderPrefix = "https.header."
)

// Config is what the service passes to every upload.
type Config struct {
	Checksum   bool
	ServerCert string // PEM file replacing the system CA pool
	Retry      providers.Retry
	// Client, if set, is used instead of one built from ServerCert.
	Client *http.Client
}

// Uploader sends one file to one URL.
type Uploader struct {
	url     string
	method  string
	headers map[string]string
	cfg     Config
	client  *http.Client
}

// New checks the start options.
func New(o providers.Options, cfg Config) (*Uploader, error) {
	raw, err := o.Required(KeyURL)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q is not an http(s) URL: %w", KeyURL, raw, providers.ErrInvalidParam)
	}
	method := strings.ToUpper(strings.TrimSpace(o[KeyMethod]))
	switch method {
	case "":
		method = http.MethodPut
	case http.MethodPut, http.MethodPost:
	default:
		return nil, fmt.Errorf("%s %q: only PUT and POST are supported: %w", KeyMethod, o[KeyMethod], providers.ErrInvalidParam)
	}
	client := cfg.Client
	if client == nil {
		client, err = NewClient(cfg.ServerCert)
		if err != nil {
			return nil, err
		}
	}
	return &Uploader{url: raw, method: method, headers: o.WithPrefix(KeyHeaderPrefix), cfg: cfg, client: client}, nil
}

// NewClient returns a client that speaks TLS 1.2–1.3 and, when serverCert
// names a PEM file, trusts only it.
func NewClient(serverCert string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if serverCert != "" {
		pem, err := os.ReadFile(serverCert)
		if err != nil {
			return nil, fmt.Errorf("serverCert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("serverCert %s holds no PEM certificate: %w", serverCert, providers.ErrInvalidParam)
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}

// Upload sends f. progress may be nil.
func (u *Uploader) Upload(ctx context.Context, f *files.File, progress providers.Progress) error {
	var md5 string
	if u.cfg.Checksum {
		var err error
		if md5, err = f.MD5Base64(); err != nil {
			return err
		}
	}
	return u.cfg.Retry.Do(ctx, transient, func() error { return u.once(ctx, f, md5, progress) })
}

func (u *Uploader) once(ctx context.Context, f *files.File, md5 string, progress providers.Progress) error {
	body := f.Section(0, f.Size())
	var sent int64
	var lastReport time.Time
	body.OnRead = func(n int) {
		sent += int64(n)
		if progress != nil && time.Since(lastReport) > 100*time.Millisecond {
			lastReport = time.Now()
			progress(sent)
		}
	}
	req, err := http.NewRequestWithContext(ctx, u.method, u.url, io.NopCloser(body))
	if err != nil {
		return fmt.Errorf("%w: %w", providers.ErrInvalidParam, err)
	}
	req.ContentLength = f.Size()
	req.GetBody = nil
	req.Header.Set("Content-Type", "application/x-binary")
	if md5 != "" {
		req.Header.Set("Content-MD5", md5)
	}
	for k, v := range u.headers {
		req.Header.Set(k, v)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		if errors.Is(err, files.ErrChanged) {
			return err
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return fmt.Errorf("%s %s: %w: %w", u.method, redact(u.url), providers.ErrRejected, err)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%s %s: %w: %w", u.method, redact(u.url), providers.ErrTransient, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: status %d %s: %w", u.method, redact(u.url), resp.StatusCode, strings.TrimSpace(string(msg)), providers.ErrRejected)
	}
	if err := f.Verify(); err != nil {
		return err
	}
	if progress != nil {
		progress(f.Size())
	}
	return nil
}

// transient: the request failed below HTTP (refused, reset, timed out).
func transient(err error) bool { return errors.Is(err, providers.ErrTransient) }

// redact drops the query (it may hold a signature) from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}
