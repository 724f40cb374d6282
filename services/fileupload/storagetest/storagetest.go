// Package storagetest starts the real storage servers the file upload tests
// and benchmarks run against, on free loopback ports: versitygw (S3, posix
// backend in a temp folder) and Microsoft's azurite (Azure Blob).
package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/kantofw/kanto/internal/testenv"
)

// S3 is a running versitygw.
type S3 struct {
	Endpoint  string // http://127.0.0.1:port
	Addr      string // 127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Root      string // posix backend folder; a bucket is a folder in it
}

// StartS3 runs versitygw with a posix backend and creates bucket.
func StartS3(t testing.TB, bucket string) *S3 {
	t.Helper()
	bin := lookGoBin(t, "versitygw")
	s := &S3{Region: "us-east-1", AccessKey: "kantoaccess", SecretKey: "kantosecret1234", Root: t.TempDir()}
	s.Addr = testenv.Addr(testenv.FreePort(t))
	s.Endpoint = "http://" + s.Addr
	if err := os.Mkdir(filepath.Join(s.Root, bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	start(t, bin, s.Addr, nil, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.Addr, "--quiet", "posix", s.Root)
	return s
}

// Object is the path of an object in the posix backend.
func (s *S3) Object(bucket, key string) string { return filepath.Join(s.Root, bucket, key) }

// Azure is a running azurite blob service.
type Azure struct {
	Endpoint string // http://127.0.0.1:port/devstoreaccount1/
	Addr     string
	Cred     *service.SharedKeyCredential
}

// Well-known azurite development account.
const (
	AzureAccount = "devstoreaccount1"
	AzureKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// StartAzure runs azurite-blob (telemetry off) and creates containerName.
func StartAzure(t testing.TB, containerName string) *Azure {
	t.Helper()
	bin := testenv.LookPath(t, "azurite-blob")
	port := testenv.FreePort(t)
	a := &Azure{Addr: testenv.Addr(port)}
	a.Endpoint = "http://" + a.Addr + "/" + AzureAccount + "/"
	start(t, bin, a.Addr, nil, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--location", t.TempDir(), "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry")
	cred, err := service.NewSharedKeyCredential(AzureAccount, AzureKey)
	if err != nil {
		t.Fatal(err)
	}
	a.Cred = cred
	c, err := container.NewClientWithSharedKeyCredential(a.Endpoint+containerName, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	return a
}

// SAS returns a container SAS (create, write, read) valid for an hour,
// signed with key (AzureKey for a valid one).
func (a *Azure) SAS(t testing.TB, containerName, key string) string {
	t.Helper()
	cred, err := service.NewSharedKeyCredential(AzureAccount, key)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Minute).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.ContainerPermissions{Read: true, Create: true, Write: true}).String(),
		ContainerName: containerName,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return qp.Encode()
}

// Container returns a shared-key client of containerName for checks.
func (a *Azure) Container(t testing.TB, containerName string) *container.Client {
	t.Helper()
	c, err := container.NewClientWithSharedKeyCredential(a.Endpoint+containerName, a.Cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func lookGoBin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(string(bytes.TrimSpace(gopath)), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	testenv.Missing(t, name+" not installed (scripts/deps.sh installs it)")
	return ""
}

// start runs bin until the test ends and waits until addr accepts.
func start(t testing.TB, bin, addr string, env []string, args ...string) {
	t.Helper()
	var out lockedBuf
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", filepath.Base(bin), out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not listen on %s: %s", filepath.Base(bin), addr, out.String())
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
