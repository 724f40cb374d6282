package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	imgsvc "github.com/kantofw/kanto/services/containers/api/services/images"
	"github.com/kantofw/kanto/services/containers/cmtest"
)

// env is shared by the tests of this package: one containerd, one kanto
// binary, one image archive. Each test runs its own daemon.
var env struct {
	setupErr   error
	skip       string
	dir        string
	containerd *cmtest.Containerd
	kanto      string
	archive    string
}

const testImage = "docker.io/library/kcm-busybox:test"

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			env.skip = "needs root"
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "kcm")
		if err != nil {
			env.setupErr = err
			return m.Run()
		}
		env.dir = dir
		defer os.RemoveAll(dir)
		if env.kanto, err = cmtest.BuildKanto(dir); err != nil {
			env.setupErr = err
			return m.Run()
		}
		img, err := cmtest.BusyboxImage("sh")
		if err != nil {
			env.setupErr = err
			return m.Run()
		}
		env.archive = filepath.Join(dir, "busybox.tar")
		if env.setupErr = img.WriteOCIArchive(env.archive, testImage); env.setupErr != nil {
			return m.Run()
		}
		if _, err := os.Stat("/usr/bin/containerd"); err != nil {
			env.skip = "containerd not installed"
			return m.Run()
		}
		env.containerd, env.setupErr = cmtest.StartContainerd(filepath.Join(dir, "ctrd"))
		if env.setupErr != nil {
			return m.Run()
		}
		defer env.containerd.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

// setup gates a test and returns a fresh daemon with the test image.
func setup(t *testing.T, extra ...string) *cmtest.Daemon {
	t.Helper()
	cmtest.Requirements(t)
	if env.skip != "" {
		t.Skip(env.skip)
	}
	if env.setupErr != nil {
		t.Fatal(env.setupErr)
	}
	n := bridgeSeq.next()
	dir, err := os.MkdirTemp(env.dir, "d")
	if err != nil {
		t.Fatal(err)
	}
	// Bridge and subnet are unique per test process, so two runs of this
	// package on one host (developers share it) do not collide.
	pid := os.Getpid()
	bridge := fmt.Sprintf("kc%05dt%d", pid%100000, n)
	args := cmtest.DaemonArgs(dir, env.containerd.Socket, bridge, fmt.Sprintf("10.%d.%d.0/24", 100+pid%100, n))
	d := cmtest.StartDaemon(t, env.kanto, dir, append(args, extra...))
	t.Cleanup(func() {
		if t.Failed() {
			d.DumpStacks()
			t.Logf("daemon log:\n%s", d.Logs())
		}
		cleanupDaemon(t, d)
		d.Stop()
		if r := d.Races(); r != "" {
			t.Errorf("data race in the daemon:\n%s", r)
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	if out, errOut, code := d.CLI("import", env.archive); code != 0 {
		t.Fatalf("import: %s %s", out, errOut)
	}
	return d
}

// cleanupDaemon removes every container of the daemon (force) and its bridge.
func cleanupDaemon(t *testing.T, d *cmtest.Daemon) {
	out, _, code := d.CLI("list", "-q")
	if code != 0 {
		return
	}
	for _, id := range splitFields(out) {
		d.CLI("remove", "-f", id)
	}
}

type seq struct{ n int }

func (s *seq) next() int { s.n++; return s.n }

var bridgeSeq seq

// client returns a gRPC client generated from our .proto files.
func client(t *testing.T, d *cmtest.Daemon) (ctrsvc.ContainersClient, imgsvc.ImagesClient) {
	t.Helper()
	conn, err := grpc.Dial("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctrsvc.NewContainersClient(conn), imgsvc.NewImagesClient(conn)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func runKanto(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(env.kanto, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}
