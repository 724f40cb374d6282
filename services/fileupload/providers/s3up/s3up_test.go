package s3up

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kantofw/kanto/internal/netproxy"
	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
)

const bucket = "uploads"

func options(s *storagetest.S3, endpoint string) providers.Options {
	return providers.Options{
		KeyRegion: s.Region, KeyAccessKey: s.AccessKey, KeySecret: s.SecretKey,
		KeyBucket: bucket, KeyEndpoint: endpoint,
	}
}

func open(t *testing.T, path string) *files.File {
	t.Helper()
	f, err := files.Open(files.Policy{Glob: filepath.Join(filepath.Dir(path), "*"), Mode: files.Strict}, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestUploadSmallAndMultipart(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		size     int64
		checksum bool
	}{
		{"empty", 0, true},
		{"small-md5", 1 << 20, true},
		{"small-plain", 300 << 10, false},
		{"multipart-md5", 12 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".bin")
			want := storagetest.WriteRandom(t, path, tc.size)
			u, err := New(options(s, s.Endpoint), Config{Checksum: tc.checksum, PartSize: 5 << 20})
			if err != nil {
				t.Fatal(err)
			}
			var last int64
			f := open(t, path)
			if err := u.Upload(ctxT(t), f, func(n int64) { last = n }); err != nil {
				t.Fatalf("upload: %v", err)
			}
			if got := storagetest.MD5File(t, s.Object(bucket, u.Key(f))); got != want {
				t.Errorf("stored md5 %s, want %s", got, want)
			}
			if last != tc.size {
				t.Errorf("last progress %d, want %d", last, tc.size)
			}
		})
	}
}

// TestServerChecksContentMD5 shows the server refuses a body whose
// Content-MD5 does not match, so the checksum we send is enforced.
func TestServerChecksContentMD5(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	c := NewClient(s.Region, s.AccessKey, s.SecretKey, "", s.Endpoint, nil)
	_, err := c.PutObject(ctxT(t), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("x"),
		Body: strings.NewReader("hello"), ContentMD5: aws.String("1B2M2Y8AsgTpgAmY7PhCfg==")})
	if err == nil {
		t.Fatal("PutObject with a wrong Content-MD5 succeeded")
	}
	if _, err := os.Stat(s.Object(bucket, "x")); err == nil {
		t.Error("object stored despite the wrong Content-MD5")
	}
}

func TestWrongCredentials(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	path := filepath.Join(t.TempDir(), "f.bin")
	storagetest.WriteRandom(t, path, 1000)
	o := options(s, s.Endpoint)
	o[KeySecret] = "wrong-secret"
	u, err := New(o, Config{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	err = u.Upload(ctxT(t), f, nil)
	if !errors.Is(err, providers.ErrRejected) {
		t.Fatalf("got %v, want ErrRejected", err)
	}
	if !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Errorf("error %q does not name the cause", err)
	}
	if _, err := os.Stat(s.Object(bucket, u.Key(f))); err == nil {
		t.Error("object stored with wrong credentials")
	}
}

func TestMissingOptions(t *testing.T) {
	for _, k := range []string{KeyRegion, KeyAccessKey, KeySecret, KeyBucket} {
		o := providers.Options{KeyRegion: "r", KeyAccessKey: "a", KeySecret: "s", KeyBucket: "b"}
		delete(o, k)
		_, err := New(o, Config{})
		if !errors.Is(err, providers.ErrMissingParam) || !strings.Contains(err.Error(), "'"+k+"'") {
			t.Errorf("without %s: %v", k, err)
		}
	}
}

// TestGrowingFileNotCompleted appends to the file after the first part:
// the multipart upload is aborted and no object appears.
func TestGrowingFileNotCompleted(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	path := filepath.Join(t.TempDir(), "grow.bin")
	storagetest.WriteRandom(t, path, 11<<20)
	u, err := New(options(s, s.Endpoint), Config{Checksum: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f := open(t, path)
	var once sync.Once
	err = u.Upload(ctxT(t), f, func(int64) {
		once.Do(func() {
			w, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			w.Write([]byte("more"))
			w.Close()
		})
	})
	if !errors.Is(err, files.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if _, err := os.Stat(s.Object(bucket, u.Key(f))); err == nil {
		t.Error("object of a changed file was completed")
	}
}

// TestLargeResumeAfterCut cuts the connection mid-upload of a >100 MiB
// file; the upload resumes with the missing parts instead of restarting.
func TestLargeResumeAfterCut(t *testing.T) {
	if testing.Short() {
		t.Skip("large upload")
	}
	s := storagetest.StartS3(t, bucket)
	p, err := netproxy.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(t.TempDir(), "large.bin")
	const size = 101<<20 + 12345
	want := storagetest.WriteRandom(t, path, size)
	var cnt storagetest.Counter
	const part = 8 << 20
	u, err := New(options(s, "http://"+p.Addr()), Config{Checksum: true, PartSize: part, HTTPClient: cnt.Client(),
		Retry: providers.Retry{Wait: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restored := make(chan struct{})
	f := open(t, path)
	err = u.Upload(ctxT(t), f, func(n int64) {
		if n >= 60<<20 {
			once.Do(func() {
				// Cut while the next part is in flight.
				go func() {
					time.Sleep(30 * time.Millisecond)
					p.Cut()
					time.Sleep(300 * time.Millisecond)
					p.Restore()
					close(restored)
				}()
			})
		}
	})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	<-restored
	if got := storagetest.MD5File(t, s.Object(bucket, u.Key(f))); got != want {
		t.Errorf("stored md5 %s, want %s", got, want)
	}
	t.Logf("sent %d bytes for %d", cnt.Written(), size)
	// Up to 4 parts in flight are lost by the cut; a restart would send
	// the first 60 MiB again.
	// Resuming resends at most the 4 parts in flight at the cut (one more
	// as slack for what sat in socket buffers); a restart would resend the
	// 60 MiB sent before it.
	if w := cnt.Written(); w > size+5*part {
		t.Errorf("sent %d bytes for a %d-byte file: the upload restarted instead of resuming", w, size)
	}
}

// TestCancelAbortsMultipart: a canceled multipart upload leaves neither an
// object nor an unfinished multipart upload behind.
func TestCancelAbortsMultipart(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	path := filepath.Join(t.TempDir(), "c.bin")
	storagetest.WriteRandom(t, path, 12<<20)
	u, err := New(options(s, s.Endpoint), Config{PartSize: 5 << 20, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	f := open(t, path)
	err = u.Upload(ctx, f, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(s.Object(bucket, u.Key(f))); err == nil {
		t.Error("object of a canceled upload exists")
	}
	out, err := u.client.ListMultipartUploads(ctxT(t), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(out.Uploads))
	}
}

// TestResumeAfterInterruption: an upload interrupted (service stopping)
// keeps its parts; the next upload of the same file sends only the rest.
// A file rewritten in between gets none of the old parts.
func TestResumeAfterInterruption(t *testing.T) {
	s := storagetest.StartS3(t, bucket)
	path := filepath.Join(t.TempDir(), "r.bin")
	const size, part = 26 << 20, 5 << 20
	want := storagetest.WriteRandom(t, path, size)

	u1, err := New(options(s, s.Endpoint), Config{Checksum: true, PartSize: part, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancelCause(ctxT(t))
	f := open(t, path)
	err = u1.Upload(ctx, f, func(n int64) {
		if n >= 3*part {
			stop(providers.ErrInterrupted)
		}
	})
	if !errors.Is(err, providers.ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}

	var cnt storagetest.Counter
	u2, err := New(options(s, s.Endpoint), Config{Checksum: true, PartSize: part, Concurrency: 1, HTTPClient: cnt.Client()})
	if err != nil {
		t.Fatal(err)
	}
	var first int64 = -1
	if err := u2.Upload(ctxT(t), open(t, path), func(n int64) {
		if first < 0 {
			first = n
		}
	}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := storagetest.MD5File(t, s.Object(bucket, u2.Key(f))); got != want {
		t.Errorf("stored md5 %s, want %s", got, want)
	}
	if w := cnt.Written(); w > size-3*part+1<<20 {
		t.Errorf("resume sent %d bytes; at least 3 parts (%d bytes) were already stored", w, 3*part)
	}
	if first < 3*part {
		t.Errorf("first progress %d, want the kept parts (>= %d) counted", first, 3*part)
	}

	// Interrupt again, then rewrite the file with other bytes: nothing old
	// may be reused.
	ctx, stop = context.WithCancelCause(ctxT(t))
	_ = u1.Upload(ctx, open(t, path), func(n int64) {
		if n >= 2*part {
			stop(providers.ErrInterrupted)
		}
	})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(path))
	storagetest.WriteRandom(t, path, size+1) // another seed: other bytes
	must(os.Truncate(path, size))
	want3 := storagetest.MD5File(t, path)
	if err := u1.Upload(ctxT(t), open(t, path), nil); err != nil {
		t.Fatalf("upload of the rewritten file: %v", err)
	}
	if got := storagetest.MD5File(t, s.Object(bucket, u1.Key(f))); got != want3 {
		t.Errorf("stored md5 %s, want %s (old parts reused?)", got, want3)
	}
}
