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

	"github.com/kantofw/kanto/internal/mosquittotest"
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
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], "-configFile", conf, "-logLevel", "DEBUG")
	cmd.Env = append(os.Environ(), "KANTO_FILEUPLOAD_MAIN=1")
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("service log:\n%s", stderr.String())
		}
	}()
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

	must(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	exited = true
	if err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
