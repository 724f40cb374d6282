package softwareupdate_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/softwareupdate"
)

const waitFor = 30 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// lastOp is a lastOperation value as written by the feature.
type lastOp struct {
	CorrelationID  string                    `json:"correlationID"`
	Status         string                    `json:"status"`
	SoftwareModule *softwareupdate.ModuleRef `json:"softwareModule"`
	Progress       *int                      `json:"progress"`
	Message        string                    `json:"message"`
	StatusCode     string                    `json:"statusCode"`
}

func (l lastOp) String() string {
	s := l.Status
	if l.Progress != nil {
		s += fmt.Sprintf("(%d)", *l.Progress)
	}
	if l.Message != "" {
		s += " " + l.Message
	}
	if l.StatusCode != "" {
		s += " code=" + l.StatusCode
	}
	return s
}

// cloud plays the connector and the backend.
type cloud struct {
	t      *testing.T
	c      *mqtt.Client
	mu     sync.Mutex
	msgs   []*ditto.Envelope
	topics []string
	ch     chan struct{}
}

func newCloud(t *testing.T, url string) *cloud {
	k := &cloud{t: t, ch: make(chan struct{}, 1)}
	k.c = mqtt.New(mqtt.Options{URL: url, ClientID: "cloud-" + t.Name(), CleanSession: true, AutoReconnect: true})
	ctx := ctxT(t)
	if err := k.c.Subscribe(ctx, "edge/thing/request", 1, func(ctx context.Context, m mqtt.Message) {
		_ = k.c.Publish(ctx, mqtt.Message{Topic: "edge/thing/response", QoS: 1, Payload: []byte(`{"deviceId":"ns:dev"}`)})
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"e", "command///res/#"} {
		if err := k.c.Subscribe(ctx, f, 1, func(_ context.Context, m mqtt.Message) {
			e, err := ditto.Parse(m.Payload)
			if err != nil {
				return
			}
			k.mu.Lock()
			k.msgs, k.topics = append(k.msgs, e), append(k.topics, m.Topic)
			k.mu.Unlock()
			select {
			case k.ch <- struct{}{}:
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := k.c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.c.Close)
	return k
}

func (k *cloud) send(op string, value any) {
	k.t.Helper()
	v, _ := json.Marshal(value)
	e := &ditto.Envelope{Topic: "ns/dev/things/live/messages/" + op, Path: "/features/SoftwareUpdatable/inbox/messages/" + op,
		Headers: ditto.Headers{"correlation-id": "x", "response-required": true}, Value: v}
	b, _ := e.Marshal()
	if err := k.c.Publish(ctxT(k.t), mqtt.Message{Topic: "command///req/r-" + op + "/" + op, QoS: 1, Payload: b}); err != nil {
		k.t.Fatal(err)
	}
}

// ops returns the lastOperation values of correlation ID id.
func (k *cloud) ops(id string) []lastOp {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []lastOp
	for _, e := range k.msgs {
		if strings.HasSuffix(e.Path, "/properties/status/lastOperation") {
			var l lastOp
			if json.Unmarshal(e.Value, &l) == nil && l.CorrelationID == id {
				out = append(out, l)
			}
		}
	}
	return out
}

func (k *cloud) waitOp(id, status string) []lastOp {
	k.t.Helper()
	deadline := time.After(waitFor)
	for {
		ops := k.ops(id)
		for _, o := range ops {
			if o.Status == status {
				return ops
			}
		}
		select {
		case <-k.ch:
		case <-deadline:
			k.t.Fatalf("timed out waiting for %s %s; got %v", id, status, ops)
		}
	}
}

func (k *cloud) waitPath(what string, cond func(e *ditto.Envelope) bool) *ditto.Envelope {
	k.t.Helper()
	deadline := time.After(waitFor)
	for {
		k.mu.Lock()
		msgs := append([]*ditto.Envelope(nil), k.msgs...)
		k.mu.Unlock()
		for _, e := range msgs {
			if cond(e) {
				return e
			}
		}
		select {
		case <-k.ch:
		case <-deadline:
			k.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func statuses(ops []lastOp) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.String())
	}
	return out
}

// tgz builds a tar.gz with the given files.
func tgz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// gatedScript reports 50%, waits for the gate file, then finishes with a
// final message and installs a dependency description.
func gatedScript(gate string, exit int) string {
	return fmt.Sprintf(`printf 'progress=50\nmessage=half way\n' > status
while [ ! -e %q ]; do sleep 0.05; done
mkdir -p installed-deps
printf 'group=test\nname=app\nversion=1.0\n' > installed-deps/app.prs
printf 'progress=100\nmessage=My final message!\nstatusCode=%d\n' > status
exit %d
`, gate, exit, exit)
}

type files struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (f *files) put(name string, b []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[name] = b
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	b, ok := f.m[strings.TrimPrefix(r.URL.Path, "/")]
	f.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

type env struct {
	t       *testing.T
	broker  *mosquittotest.Broker
	cloud   *cloud
	files   *files
	srv     *httptest.Server
	storage string
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, broker: mosquittotest.Start(t, mosquittotest.Options{}), files: &files{m: map[string][]byte{}}, storage: t.TempDir()}
	e.srv = httptest.NewServer(e.files)
	t.Cleanup(e.srv.Close)
	e.cloud = newCloud(t, e.broker.URL())
	return e
}

func (e *env) config() softwareupdate.Config {
	cfg := softwareupdate.Defaults()
	cfg.Broker = e.broker.URL()
	cfg.StorageLocation = e.storage
	cfg.Domain = ""
	return cfg
}

func (e *env) start(cfg softwareupdate.Config) {
	e.t.Helper()
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("service log:\n%s", logBuf.String())
		}
	})
	s, err := softwareupdate.New(cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("software-update: %v", err)
		}
	})
	e.waitActivated()
}

func (e *env) waitActivated() {
	e.cloud.waitPath("feature activation", func(m *ditto.Envelope) bool {
		return m.Path == "/features/SoftwareUpdatable" && strings.Contains(string(m.Value), softwareupdate.FeatureDefinition)
	})
}

func (e *env) artifact(name string, body []byte) map[string]any {
	sum := e.files.put(name, body)
	return map[string]any{"filename": name, "size": len(body),
		"download": map[string]any{"HTTP": map[string]string{"url": e.srv.URL + "/" + name}}, "checksums": map[string]string{"SHA256": sum}}
}

func installPayload(id string, arts ...map[string]any) map[string]any {
	return map[string]any{"correlationId": id, "softwareModules": []any{map[string]any{
		"softwareModule": map[string]string{"name": "app", "version": "1.0"}, "artifacts": arts}}}
}

func TestInstallStatusSequence(t *testing.T) {
	e := newEnv(t)
	e.start(e.config())
	gate := filepath.Join(t.TempDir(), "go")
	e.cloud.send("install", installPayload("inst-1", e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": gatedScript(gate, 0)}))))
	e.cloud.waitOp("inst-1", "INSTALLING")
	e.cloud.waitPath("status file progress", func(m *ditto.Envelope) bool {
		return strings.Contains(string(m.Value), `"message":"half way"`)
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ops := e.cloud.waitOp("inst-1", "FINISHED_SUCCESS")
	want := []string{"STARTED", "DOWNLOADING(0)", "DOWNLOADING(100)", "DOWNLOADED(100)", "INSTALLING(0)",
		"INSTALLING(50) half way", "INSTALLED(100) My final message! code=0", "FINISHED_SUCCESS(100) My final message! code=0"}
	if diff := cmp.Diff(want, statuses(ops)); diff != "" {
		t.Errorf("lastOperation sequence (-want +got):\n%s", diff)
	}
	for _, o := range ops {
		if o.SoftwareModule == nil || o.SoftwareModule.Name != "app" || o.SoftwareModule.Version != "1.0" {
			t.Errorf("softwareModule %+v", o.SoftwareModule)
		}
	}
	e.cloud.waitPath("installed dependencies", func(m *ditto.Envelope) bool {
		return strings.HasSuffix(m.Path, "/installedDependencies") && strings.Contains(string(m.Value), `"0":{"group":"test","name":"app","version":"1.0"}`)
	})
	// remove answers too (upstream ignores it).
	e.cloud.send("remove", map[string]any{"correlationId": "rm-1", "software": []any{map[string]string{"group": "test", "name": "app", "version": "1.0"}}})
	ops = e.cloud.waitOp("rm-1", "FINISHED_SUCCESS")
	if diff := cmp.Diff([]string{"REMOVING", "REMOVED", "FINISHED_SUCCESS"}, statuses(ops)); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
	e.cloud.send("remove", map[string]any{"correlationId": "rm-2", "software": []any{map[string]string{"name": "app"}}})
	if ops := e.cloud.waitOp("rm-2", "FINISHED_ERROR"); ops[len(ops)-1].Message != "not installed: app:" {
		t.Errorf("remove of a missing package: %v", statuses(ops))
	}
	// Operations run one at a time: the install's folder went before.
	if entries, _ := os.ReadDir(filepath.Join(e.storage, "download")); len(entries) > 1 {
		t.Errorf("operation folders left: %v", entries)
	}
}

func TestDownloadOperationStoresModule(t *testing.T) {
	e := newEnv(t)
	e.start(e.config())
	e.cloud.send("download", installPayload("dl-1", e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": "exit 0\n"}))))
	ops := e.cloud.waitOp("dl-1", "DOWNLOADED_FILE_STORED")
	want := []string{"STARTED", "DOWNLOADING(0)", "DOWNLOADING(100)", "DOWNLOADED(100)", "FINISHED_SUCCESS", "DOWNLOADED_FILE_STORED"}
	if diff := cmp.Diff(want, statuses(ops)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	path := ops[len(ops)-1].SoftwareModule.Path
	if _, err := os.Stat(filepath.Join(path, "app.tar.gz")); err != nil {
		t.Errorf("stored module: %v", err)
	}
	// An install of the same module takes the stored files: the server no
	// longer has them.
	art := e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": "exit 0\n"}))
	e.files.mu.Lock()
	delete(e.files.m, "app.tar.gz")
	e.files.mu.Unlock()
	e.cloud.send("install", installPayload("inst-after-dl", art))
	ops = e.cloud.waitOp("inst-after-dl", "FINISHED_SUCCESS")
	if slices.ContainsFunc(ops, func(o lastOp) bool {
		return o.Status == "DOWNLOADING" && o.Progress != nil && *o.Progress > 0 && *o.Progress < 100
	}) {
		t.Errorf("the install downloaded again: %v", statuses(ops))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("stored module still there after the install: %v", err)
	}
}

func TestFailingScriptReportsExitCode(t *testing.T) {
	e := newEnv(t)
	e.start(e.config())
	e.cloud.send("install", installPayload("fail-1", e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": "echo oops; exit 3\n"}))))
	ops := e.cloud.waitOp("fail-1", "FINISHED_ERROR")
	last := ops[len(ops)-1]
	if last.Message != "fail to execute install script" || last.StatusCode != "3" {
		t.Errorf("got %s", last)
	}
	e.cloud.waitPath("lastFailedOperation", func(m *ditto.Envelope) bool {
		return strings.HasSuffix(m.Path, "/lastFailedOperation") && strings.Contains(string(m.Value), `"statusCode":"3"`)
	})
}

func TestWrongHashRejectedAndRemoved(t *testing.T) {
	e := newEnv(t)
	e.start(e.config())
	art := e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": "exit 0\n"}))
	art["checksums"] = map[string]string{"SHA256": strings.Repeat("0", 64)}
	e.cloud.send("install", installPayload("hash-1", art))
	ops := e.cloud.waitOp("hash-1", "FINISHED_ERROR")
	if last := ops[len(ops)-1]; !strings.Contains(last.Message, "checksum mismatch") {
		t.Errorf("got %s", last)
	}
	waitEmpty(t, filepath.Join(e.storage, "download"))
}

// waitEmpty waits until dir has no entries (the engine removes an
// operation's folder right after its last status).
func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("files left in %s: %v", dir, entries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	e.start(e.config())
	gate := filepath.Join(t.TempDir(), "never")
	e.cloud.send("install", installPayload("can-1", e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": gatedScript(gate, 0)}))))
	e.cloud.waitOp("can-1", "INSTALLING")
	e.cloud.send("cancel", map[string]any{"correlationId": "can-1"})
	ops := e.cloud.waitOp("can-1", "FINISHED_CANCELED")
	if got := ops[len(ops)-1].Status; got != "FINISHED_CANCELED" {
		t.Errorf("last status %s", got)
	}
	e.cloud.send("cancel", map[string]any{"correlationId": "nothing"})
	e.cloud.waitOp("nothing", "CANCEL_REJECTED")
	e.cloud.send("cancel", map[string]any{})
	e.cloud.waitPath("400 for a cancel without correlationId", func(m *ditto.Envelope) bool {
		return m.Status == 400 && strings.Contains(string(m.Value), "correlationId is missing")
	})
}

// TestHelperSoftwareUpdate is the service process of the restart test.
func TestHelperSoftwareUpdate(t *testing.T) {
	if os.Getenv("SU_TEST_CHILD") != "1" {
		t.Skip("helper process")
	}
	cfg := softwareupdate.Defaults()
	cfg.Broker = os.Getenv("SU_BROKER")
	cfg.StorageLocation = os.Getenv("SU_STORAGE")
	cfg.Domain = ""
	s, err := softwareupdate.New(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func startChild(t *testing.T, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSoftwareUpdate$")
	cmd.Env = append(os.Environ(), append(env, "SU_TEST_CHILD=1")...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestRestartDuringInstallResumes(t *testing.T) {
	e := newEnv(t)
	env := []string{"SU_BROKER=" + e.broker.URL(), "SU_STORAGE=" + e.storage}
	child := startChild(t, env...)
	e.waitActivated()
	gate := filepath.Join(t.TempDir(), "go")
	e.cloud.send("install", installPayload("rs-1", e.artifact("app.tar.gz", tgz(t, map[string]string{"install.sh": gatedScript(gate, 0)}))))
	e.cloud.waitPath("first run's progress", func(m *ditto.Envelope) bool { return strings.Contains(string(m.Value), `"message":"half way"`) })
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	before := len(e.cloud.ops("rs-1"))
	startChild(t, env...)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ops := e.cloud.waitOp("rs-1", "FINISHED_SUCCESS")
	// The restarted service goes on from INSTALLING: no new download.
	want := []string{"INSTALLING(0)", "INSTALLED(100) My final message! code=0", "FINISHED_SUCCESS(100) My final message! code=0"}
	got := statuses(ops[before:])
	got = slicesDeleteFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "INSTALLING(50)") || strings.HasPrefix(s, "INSTALLING(100)")
	})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

func slicesDeleteFunc(s []string, del func(string) bool) []string {
	var out []string
	for _, v := range s {
		if !del(v) {
			out = append(out, v)
		}
	}
	return out
}

// TestRestartDuringDownloadResumesWithRange kills the service in the
// middle of a download; the restarted service resumes the operation and
// asks the server only for the missing bytes.
func TestRestartDuringDownloadResumesWithRange(t *testing.T) {
	e := newEnv(t)
	noise := make([]byte, 2<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise) // incompressible
	body := tgz(t, map[string]string{"install.sh": "exit 0\n", "blob": string(noise)})
	sum := sha256.Sum256(body)
	release := make(chan struct{})
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if !first {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
			return
		}
		// First request: half the body, then stall until the test is done
		// killing the service.
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	env := []string{"SU_BROKER=" + e.broker.URL(), "SU_STORAGE=" + e.storage}
	child := startChild(t, env...)
	e.waitActivated()
	e.cloud.send("install", installPayload("dl-rs", map[string]any{"filename": "app.tar.gz", "size": len(body),
		"download": map[string]any{"HTTP": map[string]string{"url": srv.URL + "/app.tar.gz"}}, "checksums": map[string]string{"SHA256": hex.EncodeToString(sum[:])}}))
	e.cloud.waitPath("download progress", func(m *ditto.Envelope) bool {
		var l lastOp
		return json.Unmarshal(m.Value, &l) == nil && l.CorrelationID == "dl-rs" && l.Status == "DOWNLOADING" &&
			l.Progress != nil && *l.Progress >= 40
	})
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	startChild(t, env...)
	ops := e.cloud.waitOp("dl-rs", "FINISHED_SUCCESS")
	mu.Lock()
	got := append([]string(nil), ranges...)
	mu.Unlock()
	if len(got) != 2 || got[0] != "" || !strings.HasPrefix(got[1], "bytes=") || got[1] == "bytes=0-" {
		t.Errorf("Range headers %q, want a full GET and then a resume", got)
	}
	if last := ops[len(ops)-1]; last.Status != "FINISHED_SUCCESS" {
		t.Errorf("last %s", last)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
