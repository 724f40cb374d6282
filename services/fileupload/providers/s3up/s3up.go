// Package s3up uploads a file to Amazon S3 (or an S3-compatible server)
// with the AWS SDK for Go v2. Small files go in one PutObject; larger ones
// as a multipart upload whose parts are retried one by one, so a dropped
// connection costs at most the part in flight, not the whole file.
package s3up

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
)

// Option keys (upstream's, plus aws.endpoint for S3-compatible servers).
const (
	KeyRegion    = "aws.region"
	KeyAccessKey = "aws.access.key.id"
	KeySecret    = "aws.secret.access.key"
	KeyToken     = "aws.session.token"
	KeyBucket    = "aws.s3.bucket"
	KeyObject    = "aws.object.key"
	// KeyEndpoint is beyond upstream: a base URL such as
	// http://127.0.0.1:7070; it implies path-style addressing.
	KeyEndpoint = "aws.endpoint"
)

// Config is what the service passes to every upload.
type Config struct {
	Checksum bool
	// PartSize is the multipart part size and the single-PUT threshold;
	// 0 means 16 MiB. S3 needs at least 5 MiB.
	PartSize int64
	// Concurrency is the number of parts in flight; 0 means 4.
	Concurrency int
	Retry       providers.Retry
	HTTPClient  *http.Client
}

// Uploader uploads to one bucket.
type Uploader struct {
	client *s3.Client
	bucket string
	key    string
	cfg    Config
}

// New checks the start options and builds a client.
func New(o providers.Options, cfg Config) (*Uploader, error) {
	var vals [4]string
	for i, k := range []string{KeyRegion, KeyAccessKey, KeySecret, KeyBucket} {
		v, err := o.Required(k)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = 16 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("part size %d is below S3's 5 MiB minimum: %w", cfg.PartSize, providers.ErrInvalidParam)
	}
	return &Uploader{client: NewClient(vals[0], vals[1], vals[2], o[KeyToken], o[KeyEndpoint], cfg.HTTPClient), bucket: vals[3], key: o[KeyObject], cfg: cfg}, nil
}

// NewClient builds an S3 client with static credentials. The SDK's own
// retries are off (the uploader retries per part); payloads are sent
// unsigned (integrity comes from Content-MD5) so each part is read once.
func NewClient(region, ak, sk, token, endpoint string, hc *http.Client) *s3.Client {
	opts := s3.Options{
		Region:                     region,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, token),
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if hc != nil {
		opts.HTTPClient = hc
	}
	if endpoint != "" {
		opts.BaseEndpoint = aws.String(endpoint)
		opts.UsePathStyle = true
	}
	return s3.New(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
}

// Key is the object key for f: aws.object.key, else the file's path
// without its leading slash (upstream uses the path as given).
func (u *Uploader) Key(f *files.File) string {
	if u.key != "" {
		return u.key
	}
	return strings.TrimPrefix(f.Path, "/")
}

// Upload sends f. progress may be nil.
func (u *Uploader) Upload(ctx context.Context, f *files.File, progress providers.Progress) error {
	if f.Size() <= u.cfg.PartSize {
		return u.put(ctx, f, progress)
	}
	return u.multipart(ctx, f, progress)
}

func (u *Uploader) put(ctx context.Context, f *files.File, progress providers.Progress) error {
	in := &s3.PutObjectInput{Bucket: &u.bucket, Key: aws.String(u.Key(f)), ContentLength: aws.Int64(f.Size())}
	if u.cfg.Checksum {
		sum, err := f.MD5Base64()
		if err != nil {
			return err
		}
		in.ContentMD5 = &sum
	}
	err := u.cfg.Retry.Do(ctx, transient, func() error {
		body := f.Section(0, f.Size())
		in.Body = body
		_, err := u.client.PutObject(ctx, in)
		return classify(ctx, err)
	})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", u.bucket, *in.Key, err)
	}
	if progress != nil {
		progress(f.Size())
	}
	return nil
}

func (u *Uploader) multipart(ctx context.Context, f *files.File, progress providers.Progress) (err error) {
	key := u.Key(f)
	ps := providers.SplitParts(f.Size(), u.cfg.PartSize)
	parts := make([]types.CompletedPart, len(ps))
	// An unfinished upload of the same key (the service stopped, or the
	// network stayed down) is resumed: parts whose size and MD5 match the
	// local ones are kept.
	id, have := u.findUnfinished(ctx, f, key, ps, parts)
	if id == "" {
		create := &s3.CreateMultipartUploadInput{Bucket: &u.bucket, Key: &key}
		if err := u.cfg.Retry.Do(ctx, transient, func() error {
			out, err := u.client.CreateMultipartUpload(ctx, create)
			if err == nil {
				id = aws.ToString(out.UploadId)
			}
			return classify(ctx, err)
		}); err != nil {
			return fmt.Errorf("create multipart upload s3://%s/%s: %w", u.bucket, key, err)
		}
	}
	defer func() {
		if err != nil && !providers.Resumable(err) {
			u.abort(key, id)
		}
	}()
	var todo []providers.Part
	var kept int64
	for _, p := range ps {
		if have[p.N] {
			kept += p.Size
		} else {
			todo = append(todo, p)
		}
	}
	if kept > 0 && progress != nil {
		progress(kept)
		inner := progress
		progress = func(n int64) { inner(kept + n) }
	}
	ps = todo
	// S3 cannot check a whole-object MD5 of a multipart upload: each part
	// carries its own Content-MD5, which S3 checks.
	err = providers.EachPart(ctx, ps, u.cfg.Concurrency, progress, func(ctx context.Context, p providers.Part) error {
		n := int32(p.N + 1)
		in := &s3.UploadPartInput{Bucket: &u.bucket, Key: &key, UploadId: &id, PartNumber: aws.Int32(n), ContentLength: aws.Int64(p.Size)}
		sec := f.Section(p.Off, p.Size)
		if u.cfg.Checksum {
			sum, err := sec.MD5()
			if err != nil {
				return err
			}
			in.ContentMD5 = aws.String(base64.StdEncoding.EncodeToString(sum))
		}
		if err := u.cfg.Retry.Do(ctx, transient, func() error {
			if _, err := sec.Seek(0, 0); err != nil {
				return err
			}
			in.Body = sec
			out, err := u.client.UploadPart(ctx, in)
			if err == nil {
				parts[p.N] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)}
			}
			return classify(ctx, err)
		}); err != nil {
			return fmt.Errorf("upload part %d of s3://%s/%s: %w", n, u.bucket, key, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := f.Verify(); err != nil {
		return err
	}
	complete := &s3.CompleteMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
	if err := u.cfg.Retry.Do(ctx, transient, func() error {
		_, err := u.client.CompleteMultipartUpload(ctx, complete)
		return classify(ctx, err)
	}); err != nil {
		return fmt.Errorf("complete multipart upload s3://%s/%s: %w", u.bucket, key, err)
	}
	return nil
}

// findUnfinished looks for an in-progress multipart upload of key and
// returns its id and the parts (by index) that already hold the same bytes
// as f, filling parts for them. Nothing found (or any error) gives "".
func (u *Uploader) findUnfinished(ctx context.Context, f *files.File, key string, ps []providers.Part, parts []types.CompletedPart) (string, map[int]bool) {
	out, err := u.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &u.bucket, Prefix: &key})
	if err != nil {
		return "", nil
	}
	var id string
	var newest time.Time
	for _, up := range out.Uploads {
		if aws.ToString(up.Key) == key && (id == "" || aws.ToTime(up.Initiated).After(newest)) {
			id, newest = aws.ToString(up.UploadId), aws.ToTime(up.Initiated)
		}
	}
	if id == "" {
		return "", nil
	}
	remote := map[int32]types.Part{}
	pg := s3.NewListPartsPaginator(u.client, &s3.ListPartsInput{Bucket: &u.bucket, Key: &key, UploadId: &id})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return "", nil
		}
		for _, p := range page.Parts {
			remote[aws.ToInt32(p.PartNumber)] = p
		}
	}
	have := map[int]bool{}
	for _, p := range ps {
		r, ok := remote[int32(p.N+1)]
		if !ok || aws.ToInt64(r.Size) != p.Size {
			continue
		}
		sum, err := f.Section(p.Off, p.Size).MD5()
		if err != nil {
			return "", nil
		}
		if strings.Trim(aws.ToString(r.ETag), `"`) == hex.EncodeToString(sum) {
			have[p.N] = true
			parts[p.N] = types.CompletedPart{ETag: r.ETag, PartNumber: aws.Int32(int32(p.N + 1))}
		}
	}
	return id, have
}

// abort drops the parts of a failed upload so nothing partial is kept.
func (u *Uploader) abort(key, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: &id})
}

// classify sorts an SDK error: an answer from S3 below 500 is a rejection,
// anything else (no answer, 5xx) is transient.
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
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 && re.HTTPStatusCode() < 500 {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s (status %d): %s: %w", ae.ErrorCode(), re.HTTPStatusCode(), ae.ErrorMessage(), providers.ErrRejected)
		}
		return fmt.Errorf("status %d: %w: %w", re.HTTPStatusCode(), providers.ErrRejected, err)
	}
	return fmt.Errorf("%w: %w", providers.ErrTransient, err)
}

func transient(err error) bool { return errors.Is(err, providers.ErrTransient) }
