package azureup

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/kantofw/kanto/internal/netproxy"
	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
)

const ctr = "uploads"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
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

// stored returns the MD5 of a blob's content and its Content-MD5 property.
func stored(t *testing.T, a *storagetest.Azure, name string) (content, prop string) {
	t.Helper()
	b := a.Container(t, ctr).NewBlobClient(name)
	resp, err := b.DownloadStream(ctxT(t), nil)
	if err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	defer resp.Body.Close()
	return storagetest.MD5Reader(t, resp.Body), hex.EncodeToString(resp.ContentMD5)
}

func exists(t *testing.T, a *storagetest.Azure, name string) bool {
	_, err := a.Container(t, ctr).NewBlobClient(name).GetProperties(ctxT(t), nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func TestUpload(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		size     int64
		checksum bool
	}{
		{"small-md5", 1 << 20, true},
		{"small-plain", 1000, false},
		{"blocks-md5", 9 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".bin")
			want := storagetest.WriteRandom(t, path, tc.size)
			u, err := New(providers.Options{KeyEndpoint: a.Endpoint, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr},
				Config{Checksum: tc.checksum, BlockSize: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Upload(ctxT(t), open(t, path), nil); err != nil {
				t.Fatalf("upload: %v", err)
			}
			content, prop := stored(t, a, tc.name+".bin")
			if content != want {
				t.Errorf("stored md5 %s, want %s", content, want)
			}
			if tc.checksum && prop != want {
				t.Errorf("Content-MD5 property %s, want %s", prop, want)
			}
		})
	}
}

func TestWrongSAS(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	path := filepath.Join(t.TempDir(), "f.bin")
	storagetest.WriteRandom(t, path, 1000)
	badKey := strings.Repeat("A", 86) + "=="
	u, err := New(providers.Options{KeyEndpoint: a.Endpoint, KeySAS: a.SAS(t, ctr, badKey), KeyContainer: ctr}, Config{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	err = u.Upload(ctxT(t), open(t, path), nil)
	if !errors.Is(err, providers.ErrRejected) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("got %v, want a 403 rejection", err)
	}
	if exists(t, a, "f.bin") {
		t.Error("blob stored with a wrong SAS")
	}
}

func TestMissingOptions(t *testing.T) {
	for _, k := range []string{KeyEndpoint, KeySAS, KeyContainer} {
		o := providers.Options{KeyEndpoint: "http://x/", KeySAS: "sig", KeyContainer: "c"}
		o[k] = " "
		_, err := New(o, Config{})
		if !errors.Is(err, providers.ErrMissingParam) || !strings.Contains(err.Error(), "'"+k+"'") {
			t.Errorf("without %s: %v", k, err)
		}
	}
}

func TestGrowingFileNotCommitted(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	path := filepath.Join(t.TempDir(), "grow.bin")
	storagetest.WriteRandom(t, path, 9<<20)
	u, err := New(providers.Options{KeyEndpoint: a.Endpoint, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr},
		Config{Checksum: true, BlockSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	err = u.Upload(ctxT(t), open(t, path), func(int64) {
		once.Do(func() { appendTo(t, path) })
	})
	if !errors.Is(err, files.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if exists(t, a, "grow.bin") {
		t.Error("blob of a changed file was committed")
	}
}

func TestLargeResumeAfterCut(t *testing.T) {
	if testing.Short() {
		t.Skip("large upload")
	}
	a := storagetest.StartAzure(t, ctr)
	p, err := netproxy.New(a.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(t.TempDir(), "large.bin")
	const size = 101<<20 + 777
	want := storagetest.WriteRandom(t, path, size)
	var cnt storagetest.Counter
	const block = 8 << 20
	ep := strings.Replace(a.Endpoint, a.Addr, p.Addr(), 1)
	u, err := New(providers.Options{KeyEndpoint: ep, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr},
		Config{Checksum: true, BlockSize: block, HTTPClient: cnt.Client(), Retry: providers.Retry{Wait: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restored := make(chan struct{})
	err = u.Upload(ctxT(t), open(t, path), func(n int64) {
		if n >= 60<<20 {
			once.Do(func() {
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
	content, prop := stored(t, a, "large.bin")
	if content != want || prop != want {
		t.Errorf("stored md5 %s (property %s), want %s", content, prop, want)
	}
	t.Logf("sent %d bytes for %d", cnt.Written(), size)
	// Resuming resends at most the 4 blocks in flight at the cut (one more
	// as slack for what sat in socket buffers); a restart would resend the
	// 60 MiB sent before it.
	if w := cnt.Written(); w > size+5*block {
		t.Errorf("sent %d bytes for a %d-byte file: the upload restarted instead of resuming", w, size)
	}
}

func appendTo(t *testing.T, path string) {
	if err := appendFile(path, []byte("more")); err != nil {
		t.Error(err)
	}
}

// TestServerChecksBlockMD5 shows azurite refuses a block whose
// transactional MD5 does not match, so the checksums we send are enforced.
func TestServerChecksBlockMD5(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	c, err := NewClient(a.Endpoint+ctr+"/x?"+a.SAS(t, ctr, storagetest.AzureKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, 16)
	_, err = c.StageBlock(ctxT(t), "YmxvY2s=", nopCloser{strings.NewReader("hello")},
		&blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(wrong)})
	if err == nil {
		t.Fatal("block with a wrong MD5 accepted")
	}
	if !strings.Contains(strings.ToLower(err.Error()), "md5") {
		t.Errorf("error %v does not name the MD5 mismatch", err)
	}
}

// TestResumeAfterInterruption: blocks staged by an interrupted upload of
// the same unchanged file are reused; after a rewrite none are.
func TestResumeAfterInterruption(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	path := filepath.Join(t.TempDir(), "r.bin")
	const size, block = 26 << 20, 4 << 20
	want := storagetest.WriteRandom(t, path, size)
	opts := providers.Options{KeyEndpoint: a.Endpoint, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr}
	u1, err := New(opts, Config{Checksum: true, BlockSize: block, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancelCause(ctxT(t))
	err = u1.Upload(ctx, open(t, path), func(n int64) {
		if n >= 3*block {
			stop(providers.ErrInterrupted)
		}
	})
	if !errors.Is(err, providers.ErrInterrupted) {
		t.Fatalf("got %v, want ErrInterrupted", err)
	}
	var cnt storagetest.Counter
	u2, err := New(opts, Config{Checksum: true, BlockSize: block, Concurrency: 1, HTTPClient: cnt.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.Upload(ctxT(t), open(t, path), nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if content, prop := stored(t, a, "r.bin"); content != want || prop != want {
		t.Errorf("stored md5 %s (property %s), want %s", content, prop, want)
	}
	if w := cnt.Written(); w > size-3*block+1<<20 {
		t.Errorf("resume sent %d bytes; 3 blocks (%d bytes) were already staged", w, 3*block)
	}

	ctx, stop = context.WithCancelCause(ctxT(t))
	_ = u1.Upload(ctx, open(t, path), func(n int64) {
		if n >= 2*block {
			stop(providers.ErrInterrupted)
		}
	})
	storagetest.WriteRandom(t, path, size+1) // another seed: other bytes
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	want = storagetest.MD5File(t, path)
	if err := u1.Upload(ctxT(t), open(t, path), nil); err != nil {
		t.Fatalf("upload of the rewritten file: %v", err)
	}
	if content, _ := stored(t, a, "r.bin"); content != want {
		t.Errorf("stored md5 %s, want %s (old blocks reused?)", content, want)
	}
}

// TestOnly201Succeeds: a Put Blob or Put Block List answered 200 instead of
// 201 (here rewritten by a proxy in front of azurite) is a rejection, as
// upstream, and is not retried.
func TestOnly201Succeeds(t *testing.T) {
	a := storagetest.StartAzure(t, ctr)
	target, err := url.Parse(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var rewrote atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	rp.ModifyResponse = func(r *http.Response) error {
		q := r.Request.URL.Query()
		// Put Blob has no comp; Put Block List is comp=blocklist.
		if r.Request.Method == http.MethodPut && r.StatusCode == http.StatusCreated && (q.Get("comp") == "" || q.Get("comp") == "blocklist") {
			r.StatusCode, r.Status = http.StatusOK, "200 OK"
			rewrote.Add(1)
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	endpoint := srv.URL + target.Path
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		size int64
	}{{"single-put", 1000}, {"block-list", 9 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			rewrote.Store(0)
			path := filepath.Join(dir, tc.name+".bin")
			storagetest.WriteRandom(t, path, tc.size)
			u, err := New(providers.Options{KeyEndpoint: endpoint, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr},
				Config{BlockSize: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			err = u.Upload(ctxT(t), open(t, path), nil)
			if !errors.Is(err, providers.ErrRejected) || !strings.Contains(err.Error(), "unexpected answer (status 200)") {
				t.Fatalf("upload answered 200: %v, want a rejection naming the status", err)
			}
			if rewrote.Load() != 1 {
				t.Errorf("%d responses rewritten, want 1 (a rejection is not retried)", rewrote.Load())
			}
		})
	}
	// The same proxy passes a 201 through untouched: the rule, not the
	// proxy, made the uploads above fail.
	rp.ModifyResponse = nil
	path := filepath.Join(dir, "through.bin")
	storagetest.WriteRandom(t, path, 1000)
	u, err := New(providers.Options{KeyEndpoint: endpoint, KeySAS: a.SAS(t, ctr, storagetest.AzureKey), KeyContainer: ctr}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Upload(ctxT(t), open(t, path), nil); err != nil {
		t.Fatalf("upload through the proxy: %v", err)
	}
}
