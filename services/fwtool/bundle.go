package fwtool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
)

// BundleMain is `kanto bundle <subcommand>`.
func BundleMain(ctx context.Context, env *cli.Env, args []string) error {
	if len(args) == 0 {
		bundleUsage(env.Stderr)
		return cli.Usagef("missing subcommand")
	}
	switch args[0] {
	case "keygen":
		return keygenMain(env, args[1:])
	case "create":
		return createMain(ctx, env, args[1:])
	case "verify":
		return verifyMain(ctx, env, args[1:])
	case "inspect":
		return inspectMain(ctx, env, args[1:])
	case "help", "-h", "--help":
		bundleUsage(env.Stdout)
		return nil
	}
	bundleUsage(env.Stderr)
	return cli.Usagef("unknown subcommand %q", args[0])
}

func bundleUsage(w io.Writer) {
	fmt.Fprint(w, `usage: kanto bundle <subcommand> [flags]

  keygen  --dir DIR                 development CA + signing key: DIR/ca.crt DIR/signing.key DIR/signing.crt
  create  --key KEY --cert CERT --compatible BOARD --version V --image CLASS=PATH [--image ...] -o OUT
  verify  --keyring CA_CERT BUNDLE  exit 0 only when signature, chain and all hashes are valid
  inspect BUNDLE [--json]           the manifest (no verification unless --keyring)

The format is specified in firmware/FORMAT.md.
`)
}

func keygenMain(env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "bundle keygen")
	dir := fs.String("dir", "", "output directory (required)")
	alg := fs.String("algorithm", "ecdsa", "signing key type: ecdsa (P-256), ed25519 or rsa (3072)")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() != 0 {
		return cli.Usagef("bundle keygen --dir DIR")
	}
	if !*force {
		for _, n := range []string{"ca.crt", "signing.key", "signing.crt"} {
			if _, err := os.Stat(filepath.Join(*dir, n)); err == nil {
				return fmt.Errorf("%s exists (use --force to overwrite)", filepath.Join(*dir, n))
			}
		}
	}
	if err := bundle.GenerateDevPKI(*dir, *alg, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s\n%s\n%s\n", filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "signing.key"), filepath.Join(*dir, "signing.crt"))
	return nil
}

func createMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "bundle create")
	var compatible, images []string
	key := fs.String("key", "", "signing key, PEM (PKCS#8, SEC 1 or PKCS#1) (required)")
	cert := fs.String("cert", "", "signing certificate chain, PEM, signer first (without it the key signs raw and the device keyring needs its public key)")
	fs.Var(&config.StringList{Values: &compatible}, "compatible", "board the bundle is for (repeatable, required)")
	version := fs.String("version", "", "bundle version (required)")
	fs.Var(&config.StringList{Values: &images}, "image", "CLASS=PATH, an image for slot class CLASS (repeatable, required)")
	out := fs.String("o", "", "output bundle file (required)")
	compress := fs.String("compress", "none", "payload compression: none, gzip or zstd")
	chunk := fs.Int64("chunk-size", bundle.DefaultChunkSize, "payload chunk size in bytes (power of two, 4 KiB..16 MiB)")
	desc := fs.String("description", "", "free text")
	quiet := fs.Bool("q", false, "no progress bar")
	build := fs.String("build", "", "build identifier")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *version == "" || *out == "" || len(compatible) == 0 || len(images) == 0 || fs.NArg() != 0 {
		return cli.Usagef("bundle create --key KEY [--cert CERT] --compatible BOARD --version V --image CLASS=PATH -o OUT")
	}
	var srcs []bundle.Source
	for _, im := range images {
		class, path, ok := splitPair(im)
		if !ok || path == "" {
			return cli.Usagef("--image %q: want CLASS=PATH", im)
		}
		srcs = append(srcs, bundle.Source{Class: class, Path: path})
	}
	signer, err := bundle.LoadKeySigner(*key, *cert)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	pr := newProgress(env, "create", *quiet)
	m, err := bundle.Create(ctx, tmp, signer, bundle.CreateOptions{
		Compatible: compatible, Version: *version, Description: *desc, Build: *build,
		Compression: *compress, ChunkSize: *chunk, TempDir: filepath.Dir(*out),
		Progress: func(done, total int64) {
			if done < total {
				pr.update(done, total)
			}
		},
	}, srcs)
	if err == nil {
		pr.finish()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fi, _ := os.Stat(*out)
	fmt.Fprintf(env.Stdout, "%s: version %s for %s, %d image(s), %s\n", *out, m.Version, strings.Join(m.Compatible, ","), len(m.Images), human(fi.Size()))
	return nil
}

// openSource opens a bundle file or URL.
func openSource(ctx context.Context, src string) (io.ReadCloser, int64, error) {
	r, err := install.Open(ctx, src, install.HTTPOptions{})
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if h, ok := r.(*install.HTTPReader); ok {
		size = h.Size()
	} else if fi, err := os.Stat(src); err == nil {
		size = fi.Size()
	}
	return r, size, nil
}

func verifyMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "bundle verify")
	keyring := fs.String("keyring", "", "keyring PEM: CA certificates and/or public keys (required)")
	compatible := fs.String("compatible", "", "also require this board in the compatible list")
	quiet := fs.Bool("q", false, "no progress and no output on success")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *keyring == "" || len(pos) != 1 {
		return cli.Usagef("bundle verify --keyring CA_CERT BUNDLE")
	}
	kr, err := bundle.LoadKeyring(*keyring)
	if err != nil {
		return err
	}
	src, _, err := openSource(ctx, pos[0])
	if err != nil {
		return err
	}
	defer src.Close()
	r, err := bundle.Open(src, bundle.VerifyOptions{Keyring: kr, Compatible: *compatible})
	if err != nil {
		return verifyExit(err)
	}
	m := r.Manifest()
	var total, done int64
	for _, im := range m.Images {
		total += im.Size
	}
	pr := newProgress(env, "verify", *quiet)
	for {
		_, ir, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return verifyExit(err)
		}
		w := &countWriter{fn: func(n int64) { done += n; pr.update(done, total) }}
		if _, err := io.Copy(w, ir); err != nil {
			return verifyExit(err)
		}
	}
	if !*quiet {
		fmt.Fprintf(env.Stdout, "OK %s: version %s for %s, signed by %s\n", pos[0], m.Version, strings.Join(m.Compatible, ","), signerName(r.Signer))
	}
	return nil
}

func signerName(s *bundle.Signer) string {
	if s.Subject != "" {
		return fmt.Sprintf("%q (issuer %q)", s.Subject, s.Issuer)
	}
	return "key " + s.KeyID[:16]
}

type countWriter struct{ fn func(int64) }

func (c *countWriter) Write(p []byte) (int, error) { c.fn(int64(len(p))); return len(p), nil }

func inspectMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "bundle inspect")
	jsonOut := fs.Bool("json", false, "print the manifest and signature block as JSON")
	raw := fs.Bool("manifest-raw", false, "print the exact signed manifest bytes (for external signing tools)")
	keyring := fs.String("keyring", "", "also verify the signature (not the payload) against this keyring")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("bundle inspect BUNDLE [--json]")
	}
	src, _, err := openSource(ctx, pos[0])
	if err != nil {
		return err
	}
	defer src.Close()
	h, err := bundle.ReadHeader(src)
	if err != nil {
		return verifyExit(err)
	}
	verdict := "not verified (no --keyring)"
	var who *bundle.Signer
	if *keyring != "" {
		kr, err := bundle.LoadKeyring(*keyring)
		if err != nil {
			return err
		}
		if who, err = h.Verify(bundle.VerifyOptions{Keyring: kr}); err != nil {
			return verifyExit(err)
		}
		verdict = "valid, signed by " + signerName(who)
	}
	switch {
	case *raw:
		_, err := env.Stdout.Write(h.RawManifest)
		return err
	case *jsonOut:
		out := struct {
			Manifest   *bundle.Manifest  `json:"manifest"`
			Signature  *bundle.Signature `json:"signature"`
			HeaderSize int64             `json:"headerSize"`
			Verified   bool              `json:"verified"`
			Signer     *bundle.Signer    `json:"signer,omitempty"`
		}{h.Manifest, h.Signature, h.Size, who != nil, who}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	m := h.Manifest
	w := env.Stdout
	fmt.Fprintf(w, "Bundle:      %s\n", pos[0])
	fmt.Fprintf(w, "Version:     %s\n", m.Version)
	fmt.Fprintf(w, "Compatible:  %s\n", strings.Join(m.Compatible, ", "))
	if m.Description != "" {
		fmt.Fprintf(w, "Description: %s\n", m.Description)
	}
	if m.Build != "" {
		fmt.Fprintf(w, "Build:       %s\n", m.Build)
	}
	fmt.Fprintf(w, "Created:     %s\n", m.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "Signature:   %s, %d certificate(s), %s\n", h.Signature.Algorithm, len(h.Signature.Certificates), verdict)
	for _, im := range m.Images {
		fmt.Fprintf(w, "Image %s:\n  file:        %s\n  size:        %d (%s)\n  sha256:      %s\n  compression: %s, stored %d bytes in %d chunks of %s\n",
			im.Class, im.Filename, im.Size, human(im.Size), im.SHA256, im.Compression, im.StoredSize, len(im.Chunks), human(im.ChunkSize))
	}
	return nil
}
