package httpup

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/netproxy"
	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
)

// server stores bodies under dir by URL path, checking Content-MD5 and a
// bearer token as a real upload endpoint would.
type server struct {
	dir string
	mu  sync.Mutex
	got []request
}

type request struct {
	Method, Path, ContentType, ContentMD5, Custom string
	Length                                        int64
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer good" {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Content-MD5"), r.Header.Get("X-Custom"), r.ContentLength})
	s.mu.Unlock()
	tmp, err := os.CreateTemp(s.dir, "part")
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	defer os.Remove(tmp.Name())
	h := md5.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r.Body); err != nil {
		tmp.Close()
		return // dropped connection: nothing stored
	}
	tmp.Close()
	if want := r.Header.Get("Content-MD5"); want != "" && want != base64.StdEncoding.EncodeToString(h.Sum(nil)) {
		http.Error(w, "Content-MD5 mismatch", http.StatusBadRequest)
		return
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, filepath.Base(r.URL.Path))); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

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

func TestUploadMatrix(t *testing.T) {
	srv := &server{dir: t.TempDir()}
	plain := httptest.NewServer(srv)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(srv)
	defer tlsSrv.Close()
	certFile := filepath.Join(t.TempDir(), "server.pem")
	writeCert(t, tlsSrv, certFile)
	path := filepath.Join(t.TempDir(), "data.bin")
	want := storagetest.WriteRandom(t, path, 256<<10)
	for _, base := range []string{plain.URL, tlsSrv.URL} {
		for _, method := range []string{"", "PUT", "post"} {
			for _, checksum := range []bool{true, false} {
				srv.got = nil
				name := strings.ToLower(method) + map[bool]string{true: "-md5", false: ""}[checksum] + ".bin"
				o := providers.Options{KeyURL: base + "/up/" + name, KeyMethod: method,
					KeyHeaderPrefix + "Authorization": "Bearer good", KeyHeaderPrefix + "X-Custom": "v"}
				u, err := New(o, Config{Checksum: checksum, ServerCert: certFile})
				if err != nil {
					t.Fatal(err)
				}
				if err := u.Upload(ctxT(t), open(t, path), nil); err != nil {
					t.Fatalf("%s %s checksum=%v: %v", method, base, checksum, err)
				}
				if got := storagetest.MD5File(t, filepath.Join(srv.dir, name)); got != want {
					t.Errorf("stored md5 %s, want %s", got, want)
				}
				wantMethod := strings.ToUpper(method)
				if wantMethod == "" {
					wantMethod = "PUT"
				}
				wantReq := request{Method: wantMethod, Path: "/up/" + name, ContentType: "application/x-binary", Custom: "v", Length: 256 << 10}
				if checksum {
					sum, _ := base64.StdEncoding.DecodeString(srv.got[0].ContentMD5)
					if len(sum) != 16 {
						t.Errorf("Content-MD5 %q is not a base64 MD5", srv.got[0].ContentMD5)
					}
					wantReq.ContentMD5 = srv.got[0].ContentMD5
				}
				if diff := cmp.Diff(srv.got, []request{wantReq}); diff != "" {
					t.Errorf("requests (-got +want):\n%s", diff)
				}
			}
		}
	}
}

func TestUnknownServerCertRefused(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(&server{dir: t.TempDir()})
	defer tlsSrv.Close()
	path := filepath.Join(t.TempDir(), "d.bin")
	storagetest.WriteRandom(t, path, 10)
	u, err := New(providers.Options{KeyURL: tlsSrv.URL + "/x"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Upload(ctxT(t), open(t, path), nil); !errors.Is(err, providers.ErrRejected) {
		t.Fatalf("got %v, want a rejection", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := &server{dir: t.TempDir()}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	path := filepath.Join(t.TempDir(), "d.bin")
	storagetest.WriteRandom(t, path, 1000)
	u, err := New(providers.Options{KeyURL: hs.URL + "/d.bin", KeyHeaderPrefix + "Authorization": "Bearer bad"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = u.Upload(ctxT(t), open(t, path), nil)
	if !errors.Is(err, providers.ErrRejected) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("got %v, want a 401 rejection", err)
	}
	if _, err := os.Stat(filepath.Join(srv.dir, "d.bin")); err == nil {
		t.Error("stored with wrong credentials")
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []providers.Options{
		{},
		{KeyURL: "ftp://x/y"},
		{KeyURL: "http://x/y", KeyMethod: "DELETE"},
	} {
		if _, err := New(o, Config{}); err == nil {
			t.Errorf("%v accepted", o)
		}
	}
}

// TestGrowingFile: a file that grows during the request is not stored.
func TestGrowingFile(t *testing.T) {
	srv := &server{dir: t.TempDir()}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	path := filepath.Join(t.TempDir(), "g.bin")
	storagetest.WriteRandom(t, path, 8<<20)
	f, err := files.Open(files.Policy{Glob: filepath.Join(filepath.Dir(path), "*"), Mode: files.Strict}, path, "", files.NewLimiter(16<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := New(providers.Options{KeyURL: hs.URL + "/g.bin", KeyHeaderPrefix + "Authorization": "Bearer good"}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	err = u.Upload(ctxT(t), f, func(int64) {
		once.Do(func() {
			w, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			w.Write([]byte("x"))
			w.Close()
		})
	})
	if !errors.Is(err, files.ErrChanged) {
		t.Fatalf("got %v, want ErrChanged", err)
	}
	if _, err := os.Stat(filepath.Join(srv.dir, "g.bin")); err == nil {
		t.Error("changed file stored")
	}
}

// TestLargeRetryAfterCut: a plain PUT cannot resume, so after a cut the
// request is sent again and the upload still completes intact.
func TestLargeRetryAfterCut(t *testing.T) {
	if testing.Short() {
		t.Skip("large upload")
	}
	srv := &server{dir: t.TempDir()}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	p, err := netproxy.New(strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := filepath.Join(t.TempDir(), "large.bin")
	const size = 101<<20 + 3
	want := storagetest.WriteRandom(t, path, size)
	u, err := New(providers.Options{KeyURL: "http://" + p.Addr() + "/large.bin", KeyHeaderPrefix + "Authorization": "Bearer good"},
		Config{Checksum: true, Retry: providers.Retry{Wait: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restored := make(chan struct{})
	err = u.Upload(ctxT(t), open(t, path), func(n int64) {
		if n >= 30<<20 {
			once.Do(func() {
				p.Cut()
				go func() { time.Sleep(300 * time.Millisecond); p.Restore(); close(restored) }()
			})
		}
	})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	<-restored
	if got := storagetest.MD5File(t, filepath.Join(srv.dir, "large.bin")); got != want {
		t.Errorf("stored md5 %s, want %s", got, want)
	}
}

func writeCert(t *testing.T, s *httptest.Server, path string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("-----BEGIN CERTIFICATE-----\n")
	enc := base64.StdEncoding.EncodeToString(s.Certificate().Raw)
	for len(enc) > 64 {
		b.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	b.WriteString(enc + "\n-----END CERTIFICATE-----\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
