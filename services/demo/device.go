package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/disk"
	"github.com/kantofw/kanto/images/provision"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/initcfg"
)

// The firmware releases of the campaign demo.
const (
	VersionFactory = "1.0.0"
	VersionGood    = "2.0.0"
	VersionBad     = "2.0.1-bad"
)

// appScript is the script-installed package of the campaign: software-update
// runs it with busybox sh in its download folder, and it reports through the
// status file.
const appScript = `#!/bin/sh
# hello-app %s: installed by kanto software-update for the demo campaign.
set -e
printf 'progress=10\nmessage=installing hello-app\n' > status
mkdir -p /data/apps/hello-app
echo "hello-app %s, installed by a campaign" > /data/apps/hello-app/VERSION
printf 'progress=100\nmessage=hello-app %s in /data/apps/hello-app\n' > status
`

// Images are the three builds the campaign demo needs: the factory disk
// (slot A, 1.0.0) and two update bundles, a good one and one whose
// services fail their health check.
type Images struct {
	Factory, Good, Bad *builder.Result
}

// BuildImages builds (or takes from the cache) the demo's images under
// outDir. Every image runs the campaign path (update manager and the
// firmware domain agent). kanto, when set, is the prebuilt static
// linux/amd64 binary to put into the images.
func BuildImages(ctx context.Context, repoDir, outDir, kanto string, say func(string, ...any)) (*Images, error) {
	keys := filepath.Join(outDir, "keys")
	build := func(name string, cfg builder.Config) (*builder.Result, error) {
		cfg.RepoDir, cfg.OutDir, cfg.KeysDir, cfg.KantoBinary = repoDir, filepath.Join(outDir, name), keys, kanto
		cfg.UpdateManager, cfg.SoftwareUpdate = true, true
		r, err := builder.Build(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("building image %s: %w", name, err)
		}
		cached := 0
		for _, s := range r.Steps {
			if s.Cached {
				cached++
			}
		}
		what := "disk " + r.Disk
		if r.Bundle != "" {
			what = "bundle " + r.Bundle
		}
		say("build: firmware %s: %s (%.1fs, %d of %d steps cached)", cfg.Version, what, r.Duration.Seconds(), cached, len(r.Steps))
		return r, nil
	}
	var im Images
	var err error
	if im.Factory, err = build("factory", builder.Config{Version: VersionFactory, NoBundle: true}); err != nil {
		return nil, err
	}
	if im.Good, err = build("good", builder.Config{Version: VersionGood}); err != nil {
		return nil, err
	}
	// The bad release ships a service that cannot start: the init's
	// health verdict fails the trial boot, and GRUB falls back.
	im.Bad, err = build("bad", builder.Config{Version: VersionBad,
		Services: []initcfg.Service{{Name: "broken-app", Exec: []string{"/usr/bin/kanto", "no-such-service"}, After: []string{"mosquitto"}}},
		Health:   initcfg.Health{TimeoutSec: 8}})
	return &im, err
}

// provisionDisk copies the factory image to dst and writes a device
// identity (Hono password credentials for hubAddr) onto its data partition.
func provisionDisk(src, dst string, o provision.Options) (*provision.Identity, error) {
	if err := qemu.CopyDisk(src, dst); err != nil {
		return nil, err
	}
	im, err := disk.Open(dst)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "kanto-demo-data-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	id, err := provision.Write(filepath.Join(root, strings.TrimPrefix(provision.DeviceDir, "/data/")), o)
	if err != nil {
		return nil, err
	}
	return id, im.WriteData(root)
}

// fileServer serves the update bundles on the host's loopback; the guest
// reaches it as 10.0.2.2:port through QEMU's user network.
type fileServer struct {
	srv  *http.Server
	port int
}

func serveFiles(files map[string]string) (*fileServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for name, path := range files {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	}
	fs := &fileServer{srv: &http.Server{Handler: mux}, port: l.Addr().(*net.TCPAddr).Port}
	// Owned by fileServer; ends when Close closes the listener.
	go func() { _ = fs.srv.Serve(l) }()
	return fs, nil
}

func (f *fileServer) Close() { _ = f.srv.Close() }

// guestURL is the address of a served file as the guest sees it.
func (f *fileServer) guestURL(name string) string {
	return fmt.Sprintf("http://10.0.2.2:%d/%s", f.port, name)
}

func fileDigest(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), size, err
}

// consoleMarkers are the serial console lines the timeline shows: GRUB's
// slot choice, the init's milestones, a kernel panic.
var consoleMarkers = regexp.MustCompile(`KANTO-GRUB |KANTO-EVENT |Kernel panic`)

// otaState is the OTA agent's log line of a state change (the firmware
// domain agent runs it; its output reaches the console with the service
// name in front).
var otaState = regexp.MustCompile(`^\[([a-z-]+)\].*msg="update state".* from=(\S+) to=(\S+) reason="([^"]*)"`)

// console receives the VM's raw serial output, keeps all of it in a log
// file and passes the marker lines to show.
type console struct {
	log  io.Writer
	show func(line string)

	mu  sync.Mutex
	buf []byte
}

func (c *console) Write(p []byte) (int, error) {
	if c.log != nil {
		_, _ = c.log.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := strings.IndexAny(string(c.buf), "\r\n")
		if i < 0 {
			return len(p), nil
		}
		line := strings.TrimSpace(qemu.Clean(string(c.buf[:i])))
		c.buf = c.buf[i+1:]
		if m := consoleMarkers.FindStringIndex(line); m != nil {
			c.show(line[m[0]:])
		} else if g := otaState.FindStringSubmatch(line); g != nil {
			c.show(fmt.Sprintf("%s: update state %s → %s (%s)", g[1], g[2], g[3], g[4]))
		}
	}
}
