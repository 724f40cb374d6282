package fileupload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/fileupload/providers/s3up"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// TestMain doubles as the service binary: with KANTO_FILEUPLOAD_MAIN=1 the
// test binary runs Main as `kanto file-upload` would.
func TestMain(m *testing.M) {
	if os.Getenv("KANTO_FILEUPLOAD_MAIN") == "1" {
		ctx, stop := lifecycle.SignalContext(context.Background(), os.Stderr)
		env := &cli.Env{Name: "file-upload", Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
		err := Main(ctx, env, os.Args[1:])
		stop()
		code := cli.ExitCode(err)
		if code != 0 {
			fmt.Fprintf(os.Stderr, "file-upload: %v\n", err)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestProcess runs the service as its own process with a config file:
// an upload through the handshake, a new thing identity from the
// connector, then SIGTERM and a clean exit.
func TestProcess(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	cl := startCloud(t, b)
	dir := t.TempDir()
	st, hs := newStore(t)
	writeFile(t, filepath.Join(dir, "a.log"), "payload")
	conf := filepath.Join(t.TempDir(), "file-upload.json")
	writeFile(t, conf, fmt.Sprintf(`{"files":%q,"broker":%q,"checksum":true,"delete":true,"logFile":"","stopTimeout":"2s"}`,
		filepath.Join(dir, "*.log"), b.URL()))
	proc := startProcess(t, conf)
	e := &env{dir: dir, cloud: cl}
	cl.waitFor("feature", func() bool {
		for _, ev := range cl.events {
			if ev.Path == "/features/AutoUploadable" {
				return true
			}
		}
		return false
	})
	e.trigger(t, `{"correlationId":"proc"}`, "proc", 1)
	e.start(t, "proc#1", map[string]string{"https.url": hs.URL + "/a.log"})
	if ss := cl.final("proc"); ss[len(ss)-1].State != "SUCCESS" {
		t.Fatalf("final %+v", ss[len(ss)-1])
	}
	if b, _ := st.get("a.log"); string(b) != "payload" {
		t.Errorf("stored %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.log")); err == nil {
		t.Error("not deleted")
	}

	// The connector reports another thing: the feature moves to it.
	resp := fmt.Sprintf(`{"deviceId":"org.example:edge-2","tenantId":%q,"policyId":"p"}`, tenant)
	must(t, cl.c.Publish(ctxT(t), mqtt.Message{Topic: TopicThingResponse, Payload: []byte(resp), QoS: 1}))
	cl.waitFor("feature of the new thing", func() bool {
		for _, ev := range cl.events {
			if strings.HasPrefix(ev.Topic, "org.example/edge-2/things/twin/commands/modify") && ev.Path == "/features/AutoUploadable" {
				return true
			}
		}
		return false
	})

	if err := proc.term(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

type process struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited bool
}

// startProcess runs the test binary as `file-upload -configFile conf`
// until the test ends.
func startProcess(t *testing.T, conf string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], "-configFile", conf, "-logLevel", "DEBUG")}
	p.cmd.Env = append(os.Environ(), "KANTO_FILEUPLOAD_MAIN=1")
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, p.cmd.Start())
	t.Cleanup(func() {
		if !p.exited {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("service log:\n%s", p.stderr.String())
		}
	})
	return p
}

// term sends SIGTERM and waits for the exit.
func (p *process) term() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	p.exited = true
	return p.cmd.Wait()
}

func waitFeature(cl *cloud, n int) {
	cl.waitFor("feature", func() bool {
		seen := 0
		for _, ev := range cl.events {
			if ev.Path == "/features/AutoUploadable" {
				seen++
			}
		}
		return seen >= n
	})
}

// TestProcessResumesAfterRestart: the service is stopped in the middle of
// an S3 upload and started again; the backend's next start of the same file
// resumes from the parts already stored (the first progress is not 0).
func TestProcessResumesAfterRestart(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	cl := startCloud(t, b)
	s3 := storagetest.StartS3(t, "bkt")
	dir := t.TempDir()
	want := storagetest.WriteRandom(t, filepath.Join(dir, "big.log"), 40<<20)
	conf := filepath.Join(t.TempDir(), "file-upload.json")
	writeFile(t, conf, fmt.Sprintf(`{"files":%q,"broker":%q,"checksum":true,"logFile":"","stopTimeout":"0s","partSize":%d,"uploadRate":%d}`,
		filepath.Join(dir, "*.log"), b.URL(), 5<<20, 16<<20))
	opts := map[string]string{"storage.provider": "aws", "aws.region": s3.Region, "aws.access.key.id": s3.AccessKey,
		"aws.secret.access.key": s3.SecretKey, "aws.s3.bucket": "bkt", "aws.object.key": "big.log", "aws.endpoint": s3.Endpoint}
	e := &env{dir: dir, cloud: cl}

	proc := startProcess(t, conf)
	waitFeature(cl, 1)
	e.trigger(t, `{"correlationId":"first"}`, "first", 1)
	e.start(t, "first#1", opts)
	e.waitProgress(t, "first")
	if err := proc.term(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if ss := cl.final("first"); ss[len(ss)-1].State != "CANCELED" || !strings.Contains(ss[len(ss)-1].Message, "stopping") {
		t.Errorf("status at shutdown %+v", ss[len(ss)-1])
	}

	// The stop kept the stored parts for later.
	c := s3up.NewClient(s3.Region, s3.AccessKey, s3.SecretKey, "", s3.Endpoint, nil)
	unfinished := func() []string {
		out, err := c.ListMultipartUploads(ctxT(t), &awss3.ListMultipartUploadsInput{Bucket: aws.String("bkt")})
		must(t, err)
		var ids []string
		for _, u := range out.Uploads {
			ids = append(ids, aws.ToString(u.UploadId))
		}
		return ids
	}
	before := unfinished()
	if len(before) != 1 {
		t.Fatalf("unfinished uploads after the stop: %v, want 1", before)
	}
	parts, err := c.ListParts(ctxT(t), &awss3.ListPartsInput{Bucket: aws.String("bkt"), Key: aws.String("big.log"), UploadId: &before[0]})
	must(t, err)
	if len(parts.Parts) == 0 {
		t.Fatal("no parts kept at the stop")
	}

	startProcess(t, conf)
	waitFeature(cl, 2)
	e.trigger(t, `{"correlationId":"second"}`, "second", 1)
	e.start(t, "second#1", opts)
	ss := cl.final("second")
	if last := ss[len(ss)-1]; last.State != "SUCCESS" {
		t.Fatalf("final %+v", last)
	}
	// Completing the kept upload (not a new one) leaves none unfinished.
	if after := unfinished(); len(after) != 0 {
		t.Errorf("unfinished uploads %v: the restart did not resume %s", after, before[0])
	}
	for _, s := range ss {
		if s.State == "UPLOADING" && s.Progress > 0 {
			if kept := int64(len(parts.Parts)) * 5 << 20; s.Bytes < kept {
				t.Errorf("first progress %d bytes, want the %d kept bytes counted", s.Bytes, kept)
			}
			break
		}
	}
	if got := storagetest.MD5File(t, s3.Object("bkt", "big.log")); got != want {
		t.Errorf("stored md5 %s, want %s", got, want)
	}
}
