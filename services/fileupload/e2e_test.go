package fileupload

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
)

type env struct {
	dir   string
	cloud *cloud
	svc   *Service
}

// newEnv starts Mosquitto, the cloud side and the service with files
// under a fresh folder, and waits for the feature.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	e := &env{dir: t.TempDir(), cloud: startCloud(t, b)}
	cfg := Defaults()
	cfg.Files = filepath.Join(e.dir, "*.log")
	cfg.StopTimeout = Duration(time.Second)
	if mod != nil {
		mod(&cfg)
	}
	e.svc = startService(t, b, cfg)
	e.cloud.waitFor("feature", func() bool {
		for _, ev := range e.cloud.events {
			if ev.Path == "/features/AutoUploadable" {
				return true
			}
		}
		return false
	})
	return e
}

// store is an HTTP upload endpoint that keeps bodies by name.
type store struct {
	mu    sync.Mutex
	files map[string][]byte
}

func newStore(t *testing.T) (*store, *httptest.Server) {
	s := &store{files: map[string][]byte{}}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.files[filepath.Base(r.URL.Path)] = b
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *store) get(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	return b, ok
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

// trigger sends a trigger, checks the 204 and waits for n requests of id.
func (e *env) trigger(t *testing.T, value string, id string, n int) []request {
	t.Helper()
	if r := e.cloud.op("trigger", value, true); r.Status != 204 {
		t.Fatalf("trigger status %d: %s", r.Status, r.Value)
	}
	var reqs []request
	e.cloud.waitFor(fmt.Sprintf("%d requests of %s", n, id), func() bool {
		reqs = nil
		for _, r := range e.cloud.requestsLocked() {
			if strings.HasPrefix(r.CorrelationID, id+"#") {
				reqs = append(reqs, r)
			}
		}
		return len(reqs) >= n
	})
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].CorrelationID < reqs[j].CorrelationID })
	return reqs
}

func (e *env) start(t *testing.T, id string, opts map[string]string) {
	t.Helper()
	v, _ := json.Marshal(map[string]any{"correlationId": id, "options": opts})
	if r := e.cloud.op("start", string(v), true); r.Status != 204 {
		t.Fatalf("start %s: status %d: %s", id, r.Status, r.Value)
	}
}

// TestHandshakeAllProviders runs the whole flow through Mosquitto: one
// trigger, three files, each started with another provider (HTTP, S3 on
// versitygw, Azure on azurite), checksums on and delete after upload.
func TestHandshakeAllProviders(t *testing.T) {
	s3 := storagetest.StartS3(t, "bkt")
	az := storagetest.StartAzure(t, "ctr")
	st, hs := newStore(t)
	e := newEnv(t, func(c *Config) { c.Checksum = true; c.Delete = true })
	content := map[string]string{"a.log": "alpha", "b.log": strings.Repeat("b", 3<<20), "c.log": "gamma"}
	for n, c := range content {
		writeFile(t, filepath.Join(e.dir, n), c)
	}
	writeFile(t, filepath.Join(e.dir, "skip.txt"), "not matched")

	reqs := e.trigger(t, `{"correlationId":"up-1","options":{"options.extra":"x","upload.files":"`+filepath.Join(e.dir, "*.log")+`"}}`, "up-1", 3)
	for i, r := range reqs {
		want := request{CorrelationID: fmt.Sprintf("up-1#%d", i+1), ReplyTo: "command/" + tenant, Options: map[string]string{
			"storage.providers": "aws, azure, generic", "file.path": filepath.Join(e.dir, string(rune('a'+i))+".log"), "extra": "x"}}
		if diff := cmp.Diff(r, want); diff != "" {
			t.Errorf("request %d (-got +want):\n%s", i, diff)
		}
	}
	e.start(t, "up-1#1", map[string]string{"https.url": hs.URL + "/a.log", "info.ticket": "42"})
	e.start(t, "up-1#2", map[string]string{"storage.provider": "AWS", "aws.region": s3.Region, "aws.access.key.id": s3.AccessKey,
		"aws.secret.access.key": s3.SecretKey, "aws.s3.bucket": "bkt", "aws.object.key": "dir/b.log", "aws.endpoint": s3.Endpoint})
	e.start(t, "up-1#3", map[string]string{"storage.provider": "azure", "azure.storage.endpoint": az.Endpoint,
		"azure.shared.access.signature": az.SAS(t, "ctr", storagetest.AzureKey), "azure.blob.container": "ctr"})
	ss := e.cloud.final("up-1")
	last := ss[len(ss)-1]
	if last.State != "SUCCESS" || last.Progress != 100 || last.Info["ticket"] != "42" {
		t.Fatalf("final status %+v", last)
	}
	if ss[0].State != "UPLOADING" || ss[0].Progress != 0 || ss[0].StartTime == "0001-01-01T00:00:00Z" {
		t.Errorf("first status %+v", ss[0])
	}
	prev := -1
	for _, s := range ss[:len(ss)-1] {
		if s.State != "UPLOADING" || s.Progress < prev || s.Progress > 100 {
			t.Errorf("status out of order: %+v", s)
		}
		prev = s.Progress
	}
	if b, _ := st.get("a.log"); string(b) != "alpha" {
		t.Errorf("HTTP got %q", b)
	}
	if got := storagetest.MD5File(t, s3.Object("bkt", "dir/b.log")); got != md5hex(content["b.log"]) {
		t.Errorf("S3 object md5 %s", got)
	}
	resp, err := az.Container(t, "ctr").NewBlobClient("c.log").DownloadStream(ctxT(t), nil)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "gamma" {
		t.Errorf("Azure got %q", b)
	}
	for n := range content {
		if _, err := os.Stat(filepath.Join(e.dir, n)); err == nil {
			t.Errorf("%s not deleted after upload", n)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "skip.txt")); err != nil {
		t.Errorf("unmatched file touched: %v", err)
	}

	// Wrong credentials end in FAILED naming the server's refusal, and the
	// file stays.
	for _, tc := range []struct {
		id   string
		opts map[string]string
		want string
	}{
		{"bad-s3", map[string]string{"storage.provider": "aws", "aws.region": s3.Region, "aws.access.key.id": s3.AccessKey,
			"aws.secret.access.key": "wrong", "aws.s3.bucket": "bkt", "aws.endpoint": s3.Endpoint}, "SignatureDoesNotMatch"},
		{"bad-azure", map[string]string{"storage.provider": "azure", "azure.storage.endpoint": az.Endpoint,
			"azure.shared.access.signature": az.SAS(t, "ctr", strings.Repeat("A", 86)+"=="), "azure.blob.container": "ctr"}, "403"},
	} {
		writeFile(t, filepath.Join(e.dir, "d.log"), "delta")
		e.trigger(t, `{"correlationId":"`+tc.id+`"}`, tc.id, 1)
		e.start(t, tc.id+"#1", tc.opts)
		ss := e.cloud.final(tc.id)
		if last := ss[len(ss)-1]; last.State != "FAILED" || !strings.Contains(last.Message, tc.want) {
			t.Errorf("%s: final %+v", tc.id, last)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "d.log")); err != nil {
			t.Errorf("%s: file removed after a failed upload", tc.id)
		}
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
