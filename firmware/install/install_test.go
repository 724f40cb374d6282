package install_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
)

const slotSize = 1 << 20

// device is a file-backed A/B device booted from A.
type device struct {
	dir   string
	cfg   *slot.Config
	env   *bootenv.GrubEnv
	inst  *install.Installer
	pki   *bundletest.PKI
	slotA []byte
}

func newDevice(t *testing.T) *device {
	t.Helper()
	d := &device{dir: t.TempDir(), pki: bundletest.NewPKI(t, "ecdsa")}
	d.slotA = bytes.Repeat([]byte("A-running-system"), slotSize/16)
	must(t, os.WriteFile(filepath.Join(d.dir, "slotA.img"), d.slotA, 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "slotB.img"), make([]byte, slotSize), 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "bootA.img"), make([]byte, 64<<10), 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "bootB.img"), make([]byte, 64<<10), 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte("console=ttyS0 root=PARTLABEL=rootA kanto.slot=A quiet\n"), 0o644))
	cfg := slot.Config{
		Compatible: "test-board", Bootloader: "grub", GrubEnv: "grubenv", StateDir: "state", Cmdline: "cmdline",
		Slots: []slot.Slot{
			{Name: "A", Class: "rootfs", Device: "slotA.img", PartLabel: "rootA", Size: slotSize},
			{Name: "B", Class: "rootfs", Device: "slotB.img", PartLabel: "rootB", Size: slotSize},
			{Name: "A", Class: "boot", Device: "bootA.img"},
			{Name: "B", Class: "boot", Device: "bootB.img"},
		},
	}
	data, _ := json.Marshal(cfg)
	path := filepath.Join(d.dir, "slots.json")
	must(t, os.WriteFile(path, data, 0o644))
	var err error
	if d.cfg, err = slot.Load(path); err != nil {
		t.Fatal(err)
	}
	d.env = bootenv.NewGrubEnv(d.cfg.GrubEnv)
	must(t, d.env.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}))
	d.inst = &install.Installer{Slots: d.cfg, Scheme: bootenv.NewGrubScheme(d.env), Keyring: d.pki.Keyring}
	return d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (d *device) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	must(t, err)
	return b
}

func (d *device) envMap(t *testing.T) map[string]string {
	t.Helper()
	e, err := d.env.Read()
	must(t, err)
	return e
}

func TestInstallArmsTarget(t *testing.T) {
	d := newDevice(t)
	rootfs := bundletest.Image(700<<10+3, 9)
	boot := bundletest.Image(10<<10, 8)
	b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": rootfs, "boot": boot}, bundletest.Options{Version: "2.0.0", Compression: "zstd"})
	var progress []install.Progress
	var verified string
	res, err := d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{
		Transaction: "tx-1",
		OnVerified:  func(m *bundle.Manifest, target string) error { verified = m.Version + "→" + target; return nil },
		Progress:    func(p install.Progress) { progress = append(progress, p) },
	})
	must(t, err)
	if res.Target != "B" || verified != "2.0.0→B" {
		t.Fatalf("target %q, verified %q", res.Target, verified)
	}
	if got := d.read(t, "slotB.img"); !bytes.Equal(got[:len(rootfs)], rootfs) {
		t.Fatal("slot B does not hold the rootfs image")
	}
	if got := d.read(t, "bootB.img"); !bytes.Equal(got[:len(boot)], boot) {
		t.Fatal("boot B does not hold the boot image")
	}
	if !bytes.Equal(d.read(t, "slotA.img"), d.slotA) {
		t.Fatal("booted slot A was modified")
	}
	want := map[string]string{"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "1"}
	if diff := cmp.Diff(want, d.envMap(t)); diff != "" {
		t.Fatalf("env (-want +got):\n%s", diff)
	}
	st, err := d.cfg.LoadStatus()
	must(t, err)
	if s := st.Slots["B"]; s.Status != slot.StatusTrial || s.Version != "2.0.0" || s.Transaction != "tx-1" || s.Size["rootfs"] != int64(len(rootfs)) {
		t.Fatalf("status %+v", s)
	}
	if last := progress[len(progress)-1]; last.Written != last.Total || last.Total != int64(len(rootfs)+len(boot)) {
		t.Fatalf("last progress %+v", last)
	}
	if slot, err := bootenvtest.GrubBoot(d.env); err != nil || slot != "B" {
		t.Fatalf("GRUB boots %q, %v", slot, err)
	}
}

// TestInstallRejectsBeforeWriting: a bundle whose manifest does not verify
// leaves the target and the environment byte for byte untouched.
func TestInstallRejectsBeforeWriting(t *testing.T) {
	d := newDevice(t)
	img := map[string][]byte{"rootfs": bundletest.Image(300<<10, 1)}
	good := bundletest.Build(t, d.pki.Signer(), img, bundletest.Options{})
	h, err := bundle.ReadHeader(bytes.NewReader(good))
	must(t, err)
	flip := func(pos int) []byte { b := bytes.Clone(good); b[pos] ^= 0x20; return b }
	other := bundletest.NewPKI(t, "ed25519")
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"flipped manifest byte", flip(12 + len(h.RawManifest)/2), bundle.ErrFormat},
		{"flipped signature byte", flip(int(h.Size) - 20), nil},
		{"wrong key", bundletest.Build(t, other.Signer(), img, bundletest.Options{}), bundle.ErrUntrusted},
		{"wrong board", bundletest.Build(t, d.pki.Signer(), img, bundletest.Options{Compatible: []string{"other-board"}}), bundle.ErrIncompatible},
		{"no slot for class", bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": []byte("x"), "data": []byte("y")}, bundletest.Options{}), slot.ErrNoSlot},
		{"image larger than slot", bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": make([]byte, slotSize+1)}, bundletest.Options{}), install.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			envBefore, slotBefore := d.read(t, "grubenv"), d.read(t, "slotB.img")
			_, err := d.inst.Install(context.Background(), bytes.NewReader(tc.b), install.Options{})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !bytes.Equal(d.read(t, "grubenv"), envBefore) || !bytes.Equal(d.read(t, "slotB.img"), slotBefore) {
				t.Fatal("environment or target written before the manifest was verified")
			}
		})
	}
}

// TestInstallCorruptPayload: a corrupt or short payload stops the write at
// the bad chunk and leaves the target marked bad, never armed.
func TestInstallCorruptPayload(t *testing.T) {
	rootfs := bundletest.Image(512<<10, 2) // 8 chunks of 64 KiB
	for _, tc := range []struct {
		name   string
		mangle func(b []byte, hdr int) []byte
		want   error
	}{
		{"flipped payload byte in chunk 5", func(b []byte, hdr int) []byte { b[hdr+5*(64<<10)+100] ^= 1; return b }, bundle.ErrCorrupt},
		{"truncated", func(b []byte, hdr int) []byte { return b[:hdr+3*(64<<10)+5] }, bundle.ErrTruncated},
		{"oversize", func(b []byte, _ int) []byte { return append(b, "trailing"...) }, bundle.ErrTrailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			good := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": rootfs}, bundletest.Options{})
			h, err := bundle.ReadHeader(bytes.NewReader(good))
			must(t, err)
			_, err = d.inst.Install(context.Background(), bytes.NewReader(tc.mangle(bytes.Clone(good), int(h.Size))), install.Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			env := d.envMap(t)
			if env["B_OK"] != "0" || env["ORDER"] != "A B" {
				t.Fatalf("target not left bad: %v", env)
			}
			if tc.name == "flipped payload byte in chunk 5" {
				b := d.read(t, "slotB.img")
				if !bytes.Equal(b[5*(64<<10):6*(64<<10)], make([]byte, 64<<10)) {
					t.Fatal("the corrupt chunk reached the slot")
				}
			}
			st, _ := d.cfg.LoadStatus()
			if st.Slots["B"].Status != slot.StatusBad {
				t.Fatalf("status %+v", st.Slots["B"])
			}
			if slot, _ := bootenvtest.GrubBoot(d.env); slot != "A" {
				t.Fatalf("GRUB boots %s after a failed install", slot)
			}
		})
	}
}

func TestInstallNeverWritesBootedSlot(t *testing.T) {
	d := newDevice(t)
	b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": []byte("new")}, bundletest.Options{})
	// The slots file claims B is another device, but it is a symlink to A.
	must(t, os.Remove(filepath.Join(d.dir, "slotB.img")))
	must(t, os.Symlink("slotA.img", filepath.Join(d.dir, "slotB.img")))
	_, err := d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{})
	if !errors.Is(err, slot.ErrBootedSlot) {
		t.Fatalf("got %v", err)
	}
	if !bytes.Equal(d.read(t, "slotA.img"), d.slotA) {
		t.Fatal("booted slot modified")
	}
	// Unknown booted slot: refuse.
	must(t, os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte("root=/dev/sda9\n"), 0o644))
	if _, err := d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{}); !errors.Is(err, slot.ErrUnknownBoot) {
		t.Fatalf("got %v", err)
	}
}

// cutServer serves b over HTTP on loopback; the first cuts requests abort
// the connection after a part of the body.
func cutServerTLS(t *testing.T, b []byte, cuts int, useTLS bool) (*httptest.Server, *atomic.Int32) {
	var requests atomic.Int32
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("ETag", `"bundle-v1"`)
		if int(n) <= cuts {
			w = &cuttingWriter{ResponseWriter: w, left: len(b) / (cuts + 2)}
		}
		http.ServeContent(w, r, "b.kfw", mod, bytes.NewReader(b))
	}))
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &requests
}

type cuttingWriter struct {
	http.ResponseWriter
	left int
}

func (c *cuttingWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		n, _ := c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		_ = n
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}

func TestInstallHTTPResume(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[useTLS], func(t *testing.T) {
			d := newDevice(t)
			rootfs := bundletest.Image(900<<10, 5)
			b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": rootfs}, bundletest.Options{})
			srv, requests := cutServerTLS(t, b, 3, useTLS)
			r, err := install.OpenHTTP(context.Background(), srv.URL+"/b.kfw", install.HTTPOptions{Client: srv.Client(), Backoff: func(int) time.Duration { return time.Millisecond }})
			must(t, err)
			defer r.Close()
			res, err := d.inst.Install(context.Background(), r, install.Options{})
			must(t, err)
			if res.Target != "B" || r.Resumes != 3 || requests.Load() != 4 {
				t.Fatalf("target %s, resumes %d, requests %d", res.Target, r.Resumes, requests.Load())
			}
			if got := d.read(t, "slotB.img"); !bytes.Equal(got[:len(rootfs)], rootfs) {
				t.Fatal("slot B content differs")
			}
		})
	}
}

func TestHTTPSourceChanged(t *testing.T) {
	b := bundletest.Image(300<<10, 1)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		w.Header().Set("ETag", `"v`+string('0'+rune(n))+`"`)
		rw := http.ResponseWriter(w)
		if n == 1 {
			rw = &cuttingWriter{ResponseWriter: w, left: 100 << 10}
		}
		http.ServeContent(rw, r, "b", time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	r, err := install.OpenHTTP(context.Background(), srv.URL, install.HTTPOptions{Backoff: func(int) time.Duration { return 0 }})
	must(t, err)
	defer r.Close()
	_, err = bytes.NewBuffer(nil).ReadFrom(r)
	if !errors.Is(err, install.ErrSourceChanged) {
		t.Fatalf("got %v", err)
	}
}

func TestHTTPGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := install.OpenHTTP(context.Background(), srv.URL, install.HTTPOptions{Retries: 2, Backoff: func(int) time.Duration { return 0 }})
	if !errors.Is(err, install.ErrDownload) {
		t.Fatalf("got %v", err)
	}
	srv404 := httptest.NewServer(http.NotFoundHandler())
	defer srv404.Close()
	_, err = install.OpenHTTP(context.Background(), srv404.URL, install.HTTPOptions{})
	if !errors.Is(err, install.ErrDownload) {
		t.Fatalf("404: got %v", err)
	}
}

// TestHTTPStallResumes: a connection that stops delivering bytes without
// closing (a dead link after an IP change) is abandoned after Stall and the
// download resumes with a Range request.
func TestHTTPStallResumes(t *testing.T) {
	b := bundletest.Image(256<<10, 4)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		if requests.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			w.Write(b[:100<<10])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // hang until the client gives up
			return
		}
		http.ServeContent(w, r, "b", time.Time{}, bytes.NewReader(b))
	}))
	defer srv.Close()
	r, err := install.OpenHTTP(context.Background(), srv.URL, install.HTTPOptions{Stall: 100 * time.Millisecond, Backoff: func(int) time.Duration { return 0 }})
	must(t, err)
	defer r.Close()
	got, err := io.ReadAll(r)
	must(t, err)
	if !bytes.Equal(got, b) || r.Resumes != 1 {
		t.Fatalf("%d bytes, %d resumes", len(got), r.Resumes)
	}
}

// TestSkipIdentical: with SkipIdentical a second install of the same image
// writes nothing, and a changed frame is still written.
func TestSkipIdentical(t *testing.T) {
	d := newDevice(t)
	d.inst.SkipIdentical = true
	img := bundletest.Image(700<<10, 6)
	b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": img}, bundletest.Options{})
	res, err := d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{})
	must(t, err)
	if res.Skipped != 0 {
		t.Fatalf("first install skipped %d bytes of a blank slot", res.Skipped)
	}
	// Back on A (as after a rollback), install the same bundle again.
	must(t, d.env.Write(map[string]string{"ORDER": "A B", "B_OK": "0", "B_TRY": "0"}))
	res, err = d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{})
	must(t, err)
	if res.Skipped != int64(len(img)) {
		t.Fatalf("second install skipped %d of %d bytes", res.Skipped, len(img))
	}
	img2 := bytes.Clone(img)
	img2[len(img2)-1] ^= 1 // last frame differs
	b2 := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": img2}, bundletest.Options{})
	must(t, d.env.Write(map[string]string{"ORDER": "A B", "B_OK": "0", "B_TRY": "0"}))
	res, err = d.inst.Install(context.Background(), bytes.NewReader(b2), install.Options{})
	must(t, err)
	if got := d.read(t, "slotB.img"); !bytes.Equal(got[:len(img2)], img2) || res.Skipped != 0 {
		// 700 KiB is one frame: it differs, so it is written.
		t.Fatalf("changed image: skipped %d, content equal %v", res.Skipped, bytes.Equal(got[:len(img2)], img2))
	}
}

// TestResumeInterruptedInstall: an install cut off in the middle is resumed
// later (a new process, after a reboot) from the first chunk the target
// does not hold, downloading only the rest with a Range request.
func TestResumeInterruptedInstall(t *testing.T) {
	for _, comp := range []string{"none", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			d := newDevice(t)
			rootfs := bundletest.Image(900<<10, 11) // 15 chunks of 64 KiB
			boot := bundletest.Image(100<<10, 12)
			b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"boot": boot, "rootfs": rootfs}, bundletest.Options{Compression: comp})
			h, err := bundle.ReadHeader(bytes.NewReader(b))
			must(t, err)
			// The first attempt dies after the boot image and 10 chunks of rootfs.
			cut := int(h.Size) + len(b[h.Size:])*2/3
			if _, err := d.inst.Install(context.Background(), bytes.NewReader(b[:cut]), install.Options{}); !errors.Is(err, bundle.ErrTruncated) {
				t.Fatalf("first attempt: %v", err)
			}
			var ranges []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ranges = append(ranges, r.Header.Get("Range"))
				w.Header().Set("ETag", `"b"`)
				http.ServeContent(w, r, "b", time.Time{}, bytes.NewReader(b))
			}))
			defer srv.Close()
			src, err := install.OpenHTTP(context.Background(), srv.URL, install.HTTPOptions{})
			must(t, err)
			defer src.Close()
			res, err := d.inst.Install(context.Background(), src, install.Options{Resume: true})
			must(t, err)
			if got := d.read(t, "slotB.img"); !bytes.Equal(got[:len(rootfs)], rootfs) {
				t.Fatal("slot B content differs after the resumed install")
			}
			if got := d.read(t, "bootB.img"); !bytes.Equal(got[:len(boot)], boot) {
				t.Fatal("boot B content differs after the resumed install")
			}
			if env := d.envMap(t); env["B_TRY"] != "1" || env["ORDER"] != "B A" {
				t.Fatalf("not armed: %v", env)
			}
			if comp == "none" {
				// The boot image and most of rootfs were kept, and the download went on
				// from there with a Range request (the first request was closed after
				// the header).
				want := fmt.Sprintf("bytes=%d-", h.Size+res.Resumed)
				if res.Resumed < int64(len(boot))+int64(len(rootfs))/2 || len(ranges) != 2 || ranges[1] != want {
					t.Fatalf("resumed %d bytes, requests %q, want the second %q", res.Resumed, ranges, want)
				}
			} else if res.Resumed != int64(len(boot)) {
				// A compressed image restarts at its beginning; complete images are kept.
				t.Fatalf("compressed: resumed %d, want the boot image (%d)", res.Resumed, len(boot))
			}
		})
	}
}
