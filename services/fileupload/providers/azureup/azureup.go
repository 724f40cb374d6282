// Package azureup uploads a file to Azure Blob storage with a shared access
// signature, through the Azure SDK for Go. Small files go in one Put Blob;
// larger ones as staged blocks committed at the end. A block that fails is
// staged again on its own, so a dropped connection costs at most the block
// in flight. As upstream, only HTTP 201 counts as success.
package azureup

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
)

// Option keys, as upstream.
const (
	KeyEndpoint  = "azure.storage.endpoint"
	KeySAS       = "azure.shared.access.signature"
	KeyContainer = "azure.blob.container"
)

// Config is what the service passes to every upload.
type Config struct {
	Checksum bool
	// BlockSize is the staged block size and the single-Put threshold;
	// 0 means 16 MiB.
	BlockSize int64
	// Concurrency is the number of blocks in flight; 0 means 4.
	Concurrency int
	Retry       providers.Retry
	HTTPClient  *http.Client
}

// Uploader uploads to one container.
type Uploader struct {
	endpoint, sas, container string
	cfg                      Config
}

// New checks the start options.
func New(o providers.Options, cfg Config) (*Uploader, error) {
	var vals [3]string
	for i, k := range []string{KeyEndpoint, KeySAS, KeyContainer} {
		v, err := o.Required(k)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = 16 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	ep := vals[0]
	if !strings.HasSuffix(ep, "/") {
		ep += "/" // upstream concatenates blindly; a missing slash is a common slip
	}
	return &Uploader{endpoint: ep, sas: strings.TrimPrefix(vals[1], "?"), container: vals[2], cfg: cfg}, nil
}

// BlobURL is endpoint + container + "/" + base name + "?" + SAS.
func (u *Uploader) BlobURL(f *files.File) string {
	return u.endpoint + u.container + "/" + f.Name() + "?" + u.sas
}

// NewClient returns a block blob client for a SAS URL with the SDK's own
// retries off (the uploader retries per block).
func NewClient(blobURL string, hc *http.Client) (*blockblob.Client, error) {
	o := &blockblob.ClientOptions{}
	o.Retry = policy.RetryOptions{MaxRetries: -1}
	if hc != nil {
		o.Transport = hc
	}
	c, err := blockblob.NewClientWithNoCredential(blobURL, o)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", providers.ErrInvalidParam, err)
	}
	return c, nil
}

// Upload sends f. progress may be nil.
func (u *Uploader) Upload(ctx context.Context, f *files.File, progress providers.Progress) error {
	c, err := NewClient(u.BlobURL(f), u.cfg.HTTPClient)
	if err != nil {
		return err
	}
	name := u.container + "/" + f.Name()
	// The whole-file MD5 is needed first for a single Put Blob, but only at
	// the commit of staged blocks: there it is computed alongside.
	md5 := make(chan error, 1)
	if u.cfg.Checksum {
		go func() { _, err := f.MD5(); md5 <- err }()
	} else {
		md5 <- nil
	}
	headers := func() (*blob.HTTPHeaders, error) {
		if err := <-md5; err != nil || !u.cfg.Checksum {
			return nil, err
		}
		sum, err := f.MD5()
		return &blob.HTTPHeaders{BlobContentMD5: sum}, err
	}
	if f.Size() <= u.cfg.BlockSize {
		err = u.put(ctx, c, f, headers)
	} else {
		err = u.blocks(ctx, c, f, headers, progress)
	}
	if err != nil {
		return fmt.Errorf("azure blob %s: %w", name, err)
	}
	if progress != nil {
		progress(f.Size())
	}
	return nil
}

func (u *Uploader) put(ctx context.Context, c *blockblob.Client, f *files.File, md5 func() (*blob.HTTPHeaders, error)) error {
	headers, err := md5()
	if err != nil {
		return err
	}
	opts := &blockblob.UploadOptions{HTTPHeaders: headers}
	if headers != nil {
		opts.TransactionalValidation = blob.TransferValidationTypeMD5(headers.BlobContentMD5)
	}
	return u.cfg.Retry.Do(ctx, transient, func() error {
		var raw *http.Response
		_, err := c.Upload(policy.WithCaptureResponse(ctx, &raw), nopCloser{f.Section(0, f.Size())}, opts)
		return created(ctx, raw, err)
	})
}

func (u *Uploader) blocks(ctx context.Context, c *blockblob.Client, f *files.File, md5 func() (*blob.HTTPHeaders, error), progress providers.Progress) error {
	all := providers.SplitParts(f.Size(), u.cfg.BlockSize)
	// Block ids name the file version, so blocks an interrupted upload of
	// the same unchanged file left uncommitted are reused, and never those
	// of another version.
	ids := make([]string, len(all))
	for i := range all {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "kanto-%s-%08d", f.Identity(), i))
	}
	staged := map[string]int64{}
	if bl, err := c.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil); err == nil {
		for _, b := range bl.UncommittedBlocks {
			if b.Name != nil && b.Size != nil {
				staged[*b.Name] = *b.Size
			}
		}
	}
	var ps []providers.Part
	var kept int64
	for _, p := range all {
		if size, ok := staged[ids[p.N]]; ok && size == p.Size {
			kept += p.Size
		} else {
			ps = append(ps, p)
		}
	}
	if kept > 0 && progress != nil {
		progress(kept)
		inner := progress
		progress = func(n int64) { inner(kept + n) }
	}
	err := providers.EachPart(ctx, ps, u.cfg.Concurrency, progress, func(ctx context.Context, p providers.Part) error {
		sec := f.Section(p.Off, p.Size)
		var opts *blockblob.StageBlockOptions
		if u.cfg.Checksum {
			sum, err := sec.MD5()
			if err != nil {
				return err
			}
			opts = &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum)}
		}
		if err := u.cfg.Retry.Do(ctx, transient, func() error {
			if _, err := sec.Seek(0, io.SeekStart); err != nil {
				return err
			}
			_, err := c.StageBlock(ctx, ids[p.N], nopCloser{sec}, opts)
			return classify(ctx, err)
		}); err != nil {
			return fmt.Errorf("stage block %d: %w", p.N, err)
		}
		return nil
	})
	headers, herr := md5()
	if err != nil {
		return err
	}
	if herr != nil {
		return herr
	}
	// Uncommitted blocks are dropped by the service; a changed file is
	// never committed.
	if err := f.Verify(); err != nil {
		return err
	}
	return u.cfg.Retry.Do(ctx, transient, func() error {
		var raw *http.Response
		_, err := c.CommitBlockList(policy.WithCaptureResponse(ctx, &raw), ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers})
		return created(ctx, raw, err)
	})
}

// created accepts only 201 Created, as upstream. The SDK already turns
// another success code into a ResponseError (see classify); this check
// does not depend on that.
func created(ctx context.Context, raw *http.Response, err error) error {
	if err != nil {
		return classify(ctx, err)
	}
	if raw == nil || raw.StatusCode != http.StatusCreated {
		code := 0
		if raw != nil {
			code = raw.StatusCode
		}
		return fmt.Errorf("status %d, want 201: %w", code, providers.ErrRejected)
	}
	return nil
}

// classify: an answer below 500 is a rejection; no answer or 5xx is
// transient.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(err, files.ErrChanged) {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 {
		// The SDK itself refuses a success code other than the one the
		// operation defines (201 for Put Blob and Put Block List); such an
		// answer has no error code of its own.
		code := re.ErrorCode
		if code == "" {
			code = "unexpected answer"
		}
		return fmt.Errorf("%s (status %d): %w", code, re.StatusCode, providers.ErrRejected)
	}
	return fmt.Errorf("%w: %w", providers.ErrTransient, err)
}

func transient(err error) bool { return errors.Is(err, providers.ErrTransient) }

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
