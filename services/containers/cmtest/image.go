package cmtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Blob is content addressed by its sha256 digest.
type Blob struct {
	MediaType string
	Data      []byte
}

// Digest is "sha256:<hex>".
func (b Blob) Digest() string {
	s := sha256.Sum256(b.Data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Image is a single-layer OCI image.
type Image struct {
	Layer, Config, Manifest Blob
}

// busyboxApplets are linked in the image's /bin.
var busyboxApplets = []string{"sh", "sleep", "echo", "cat", "ls", "yes", "head", "dd", "true", "false", "env", "hostname", "ip", "nc", "httpd", "wget", "seq", "kill", "ps", "tail", "printf", "mkdir", "id", "date", "stat", "ifconfig", "touch"}

// BusyboxImage builds an image whose only layer is the host's static
// busybox with its applets linked in /bin. cmd is the image CMD.
func BusyboxImage(cmd ...string) (*Image, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	mod := time.Unix(1700000000, 0)
	for _, d := range []string{"bin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "root/", "www/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mod}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: mod}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bb); err != nil {
		return nil, err
	}
	for _, a := range busyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mod}); err != nil {
			return nil, err
		}
	}
	for name, body := range map[string]string{"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n", "www/index.html": "hello from kanto-cm\n"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mod}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	img := &Image{Layer: Blob{MediaType: "application/vnd.oci.image.layer.v1.tar", Data: layer.Bytes()}}
	if len(cmd) == 0 {
		cmd = []string{"sh"}
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin", "IMAGE_VAR=from-image"}, "Cmd": cmd, "WorkingDir": "/"},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{img.Layer.Digest()}},
	})
	img.Config = Blob{MediaType: "application/vnd.oci.image.config.v1+json", Data: cfg}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc(img.Config), "layers": []any{desc(img.Layer)},
	})
	img.Manifest = Blob{MediaType: "application/vnd.oci.image.manifest.v1+json", Data: man}
	return img, nil
}

func desc(b Blob) map[string]any {
	return map[string]any{"mediaType": b.MediaType, "digest": b.Digest(), "size": len(b.Data)}
}

// WriteOCIArchive writes the image as an OCI layout tar named ref, for
// containerd's import.
func (img *Image) WriteOCIArchive(path, ref string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, b := range []Blob{img.Layer, img.Config, img.Manifest} {
		if err := add("blobs/sha256/"+b.Digest()[7:], b.Data); err != nil {
			return err
		}
	}
	md := desc(img.Manifest)
	md["annotations"] = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{md}})
	if err := add("index.json", idx); err != nil {
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}
