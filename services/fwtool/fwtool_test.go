package fwtool

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/services/internal/cli"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, main cli.Main, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }}
	err := main(context.Background(), env, args)
	return result{cli.ExitCode(err), out.String(), errb.String() + errString(err)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBundleCommands(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if r := run(t, BundleMain, "keygen", "--dir", p("keys")); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	if r := run(t, BundleMain, "keygen", "--dir", p("keys")); r.code == 0 {
		t.Fatal("keygen overwrote existing keys")
	}
	img := bundletest.Image(3<<20+5, 1)
	os.WriteFile(p("rootfs.img"), img, 0o644)
	os.WriteFile(p("boot.img"), []byte("kernel"), 0o644)
	r := run(t, BundleMain, "create", "--key", p("keys/signing.key"), "--cert", p("keys/signing.crt"), "--compatible", "qemu-x86_64", "--compatible", "generic",
		"--version", "1.0", "--image", "rootfs="+p("rootfs.img"), "--image", "boot="+p("boot.img"), "--compress", "gzip", "-o", p("b.kfw"))
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	if r := run(t, BundleMain, "verify", "--keyring", p("keys/ca.crt"), p("b.kfw")); r.code != 0 || !strings.HasPrefix(r.stdout, "OK ") {
		t.Fatalf("verify: %+v", r)
	}
	if r := run(t, BundleMain, "verify", "--keyring", p("keys/ca.crt"), "--compatible", "raspberrypi4-64", p("b.kfw")); r.code != 1 {
		t.Fatalf("verify wrong board: %+v", r)
	}
	r = run(t, BundleMain, "inspect", p("b.kfw"), "--json")
	var out struct {
		Manifest struct {
			Version    string
			Compatible []string
			Images     []struct{ Class string }
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Manifest.Version != "1.0" || len(out.Manifest.Images) != 2 {
		t.Fatalf("inspect --json: %+v", r)
	}
	if r := run(t, BundleMain, "inspect", "--keyring", p("keys/ca.crt"), p("b.kfw")); r.code != 0 || !strings.Contains(r.stdout, "valid, signed by") {
		t.Fatalf("inspect: %+v", r)
	}
	// Tamper with the last byte (payload): verify exits 1.
	b, _ := os.ReadFile(p("b.kfw"))
	b[len(b)-1] ^= 1
	os.WriteFile(p("bad.kfw"), b, 0o644)
	if r := run(t, BundleMain, "verify", "--keyring", p("keys/ca.crt"), p("bad.kfw")); r.code != 1 {
		t.Fatalf("verify tampered: %+v", r)
	}
	other := t.TempDir()
	run(t, BundleMain, "keygen", "--dir", other, "--algorithm", "ed25519")
	if r := run(t, BundleMain, "verify", "--keyring", filepath.Join(other, "ca.crt"), p("b.kfw")); r.code != 1 {
		t.Fatalf("verify other CA: %+v", r)
	}
	if r := run(t, BundleMain, "create", "--key", p("keys/signing.key")); r.code != 2 {
		t.Fatalf("create usage: %+v", r)
	}
}

func TestFwEnvAndInstall(t *testing.T) {
	editenv := testenv.LookPath(t, "grub-editenv")
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	run(t, BundleMain, "keygen", "--dir", p("keys"))
	img := bundletest.Image(2<<20, 3)
	os.WriteFile(p("rootfs.img"), img, 0o644)
	if r := run(t, BundleMain, "create", "--key", p("keys/signing.key"), "--cert", p("keys/signing.crt"), "--compatible", "qemu-x86_64", "--version", "7", "--image", "rootfs="+p("rootfs.img"), "-o", p("b.kfw")); r.code != 0 {
		t.Fatal(r)
	}
	os.WriteFile(p("slotA"), make([]byte, 4<<20), 0o644)
	os.WriteFile(p("slotB"), make([]byte, 4<<20), 0o644)
	os.WriteFile(p("cmdline"), []byte("root=PARTLABEL=rootfsA\n"), 0o644)
	if out, err := exec.Command(editenv, p("grubenv"), "create").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := run(t, FwMain, "env", "--grubenv", p("grubenv"), "ORDER=A B", "A_OK=1", "A_TRY=0", "B_OK=0", "B_TRY=0"); r.code != 0 {
		t.Fatal(r)
	}
	if r := run(t, FwMain, "env", "--grubenv", p("grubenv")); r.stdout != "A_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\nORDER=A B\n" {
		t.Fatalf("env print: %q", r.stdout)
	}
	os.WriteFile(p("slots.json"), []byte(`{"compatible":"qemu-x86_64","bootloader":"grub","grubenv":"grubenv","stateDir":"state","cmdline":"cmdline",
 "slots":[{"name":"A","class":"rootfs","device":"slotA","partlabel":"rootfsA"},{"name":"B","class":"rootfs","device":"slotB","partlabel":"rootfsB"}]}`), 0o644)
	// A reboot hook that only records: a test must never reach reboot(2).
	os.MkdirAll(p("hooks"), 0o755)
	os.WriteFile(p("hooks/reboot"), []byte("#!/bin/sh\necho requested >> "+p("reboots")+"\n"), 0o755)
	r := run(t, FwMain, "install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), "--json", p("b.kfw"))
	if r.code != 0 || !strings.Contains(r.stdout, `"state":"installed"`) {
		t.Fatalf("install: %+v", r)
	}
	got, _ := os.ReadFile(p("slotB"))
	if !bytes.Equal(got[:len(img)], img) {
		t.Fatal("slot B does not hold the image")
	}
	if r := run(t, FwMain, "install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), p("b.kfw")); r.code != 3 {
		t.Fatalf("second install while one is pending: %+v", r)
	}
	out, err := exec.Command(editenv, p("grubenv"), "list").Output()
	if err != nil || !strings.Contains(string(out), "ORDER=B A") || !strings.Contains(string(out), "B_TRY=1") {
		t.Fatalf("grub-editenv list after install: %s %v", out, err)
	}
	r = run(t, FwMain, "status", "--slots", p("slots.json"), "--json")
	var st struct {
		Update struct{ State, Target string }
		Booted string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Update.State != "installed" || st.Booted != "A" {
		t.Fatalf("status: %+v", r)
	}
	// Cancel before the reboot: the target is marked bad again.
	if r := run(t, FwMain, "rollback", "--slots", p("slots.json"), "--hooks", p("hooks")); r.code != 0 || !strings.Contains(r.stdout, "rolled-back") {
		t.Fatalf("rollback: %+v", r)
	}
	if r := run(t, FwMain, "env", "--grubenv", p("grubenv")); !strings.Contains(r.stdout, "B_OK=0") || !strings.Contains(r.stdout, "ORDER=A B") {
		t.Fatalf("env after rollback: %s", r.stdout)
	}
	if r := run(t, FwMain, "mark-bad", "--slots", p("slots.json"), "A"); r.code == 0 {
		t.Fatal("mark-bad of the booted slot succeeded")
	}

	// Anti-rollback: the factory image is version 8 and the policy
	// refuses older bundles; the bundle is version 7.
	os.WriteFile(p("slots.json"), []byte(`{"compatible":"qemu-x86_64","bootloader":"grub","grubenv":"grubenv","stateDir":"state","cmdline":"cmdline",
 "downgrade":"refuse","baseVersion":"8",
 "slots":[{"name":"A","class":"rootfs","device":"slotA","partlabel":"rootfsA"},{"name":"B","class":"rootfs","device":"slotB","partlabel":"rootfsB"}]}`), 0o644)
	envBefore, _ := os.ReadFile(p("grubenv"))
	r = run(t, FwMain, "install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), "-q", p("b.kfw"))
	if r.code == 0 || !strings.Contains(r.stderr, "downgrade refused") || !strings.Contains(r.stderr, "older than the running 8") {
		t.Fatalf("downgrade install: %+v", r)
	}
	if envAfter, _ := os.ReadFile(p("grubenv")); !bytes.Equal(envAfter, envBefore) {
		t.Fatal("a refused downgrade wrote the boot environment")
	}
	r = run(t, FwMain, "install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), "-q", "--allow-downgrade", "--json", p("b.kfw"))
	if r.code != 0 || !strings.Contains(r.stdout, `"state":"installed"`) || !strings.Contains(r.stdout, `"allowDowngrade":true`) {
		t.Fatalf("install --allow-downgrade: %+v", r)
	}
}

func TestFwSlotsAndIdentity(t *testing.T) {
	r := run(t, FwMain, "slots", "--board", "raspberrypi4-64", "--hooks", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "/dev/mmcblk0p3") || !strings.Contains(r.stdout, `"uboot"`) {
		t.Fatalf("slots: %+v", r)
	}
	hooks := t.TempDir()
	os.WriteFile(filepath.Join(hooks, "identity"), []byte("#!/bin/sh\necho dev-1\n"), 0o755)
	if r := run(t, FwMain, "identity", "--hooks", hooks); r.stdout != "dev-1\thook\n" {
		t.Fatalf("identity: %+v", r)
	}
}

// TestFwInstallHTTPS installs from an HTTPS server whose CA is given with
// --ca-cert and which requires the --header token.
func TestFwInstallHTTPS(t *testing.T) {
	_, p := testDevice(t)
	b, err := os.ReadFile(p("b.kfw"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k3n" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "b.kfw", time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	os.WriteFile(p("server-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	args := []string{"install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), "--boot-id-file", p("bootid")}
	if r := run(t, FwMain, append(args, srv.URL+"/b.kfw")...); r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without --ca-cert: %+v", r)
	}
	// The failed attempt is recorded (failed is terminal), so a new install may start.
	if r := run(t, FwMain, append(args, "--ca-cert", p("server-ca.pem"), srv.URL+"/b.kfw")...); r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("without the token: %+v", r)
	}
	if r := run(t, FwMain, append(args, "--ca-cert", p("server-ca.pem"), "--header", "Authorization: Bearer t0k3n", srv.URL+"/b.kfw")...); r.code != 0 || !strings.Contains(r.stdout, "installed") {
		t.Fatalf("install over HTTPS: %+v", r)
	}
}
