package imagetool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/images/bmap"
	"github.com/kantofw/kanto/images/disk"
	"github.com/kantofw/kanto/images/provision"
	"github.com/kantofw/kanto/services/internal/cli"
)

func provisionFlags(env *cli.Env, name string, o *provision.Options) *cliFlags {
	fs := cli.NewFlagSet(env, name)
	fs.StringVar(&o.Cloud, "cloud", "hono", "cloud backend: hono (provisioning.json) or aws (aws-connector.json)")
	fs.StringVar(&o.Serial, "serial", "", "board serial number (default: the board's hardware identity)")
	fs.StringVar(&o.DeviceID, "device-id", "", "namespaced device id (default <namespace>:<serial>)")
	fs.StringVar(&o.Namespace, "namespace", "org.eclipse.kanto", "namespace of the default device id")
	fs.StringVar(&o.TenantID, "tenant", "", "Hono tenant (default kanto; AWS default-tenant-id)")
	fs.StringVar(&o.AuthID, "auth-id", "", "Hono auth id (default: device id with '_' for ':')")
	fs.StringVar(&o.Password, "password", "", "Hono password (default: generated)")
	fs.BoolVar(&o.X509, "x509", false, "authenticate with the device certificate instead of a password")
	fs.StringVar(&o.Address, "address", "", "hub address, e.g. mqtts://hono.example.com:8883 (required for aws)")
	fs.StringVar(&o.CACertFile, "ca-cert", "", "hub CA bundle to install as ca.crt")
	fs.StringVar(&o.IssuerCert, "issuer-cert", "", "factory CA certificate that signs the device certificate (default: self-signed)")
	fs.StringVar(&o.IssuerKey, "issuer-key", "", "factory CA key")
	return &cliFlags{fs}
}

// ProvisionMain is `kanto provision`: create this device's identity.
func ProvisionMain(ctx context.Context, env *cli.Env, args []string) error {
	var o provision.Options
	f := provisionFlags(env, "provision", &o)
	out := f.String("out", provision.DeviceDir, "directory to write the identity to")
	hooks := f.String("hooks", "/etc/kanto/board.d", "board hook executables (an 'identity' hook overrides the hardware identity)")
	if err := cli.Parse(f.FlagSet, args); err != nil {
		return err
	}
	if f.NArg() != 0 {
		return cli.Usagef("unexpected arguments %q", f.Args())
	}
	if o.Serial == "" && o.DeviceID == "" {
		id, err := (&board.Hooks{Dir: *hooks}).Identity(ctx)
		if err != nil {
			return fmt.Errorf("board identity (give -serial): %w", err)
		}
		o.Serial = strings.ReplaceAll(id.ID, " ", "-")
		fmt.Fprintf(env.Stderr, "provision: serial %s (from %s)\n", o.Serial, id.Source)
	}
	id, err := provision.Write(*out, o)
	if err != nil {
		return err
	}
	return printIdentity(env, id, *out)
}

func printIdentity(env *cli.Env, id *provision.Identity, where string) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s\nwritten to %s\n", b, where)
	return nil
}

// imageProvisionMain is `kanto image provision [flags] IMAGE`: write one
// device's identity into the data partition of a built image (replacing the
// partition's content: this is a factory step before first boot).
func imageProvisionMain(_ context.Context, env *cli.Env, args []string) error {
	var o provision.Options
	f := provisionFlags(env, "image provision", &o)
	if err := cli.Parse(f.FlagSet, args); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return cli.Usagef("usage: kanto image provision [flags] IMAGE")
	}
	img, err := disk.Open(f.Arg(0))
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "kanto-provision-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	// The data partition is mounted at /data on the device.
	dir := filepath.Join(root, strings.TrimPrefix(provision.DeviceDir, "/data/"))
	id, err := provision.Write(dir, o)
	if err != nil {
		return err
	}
	if err := img.WriteData(root); err != nil {
		return err
	}
	// The data partition changed, so the block map must follow.
	bm := strings.TrimSuffix(f.Arg(0), ".img") + ".bmap"
	if err := writeBmap(f.Arg(0), bm); err != nil {
		return err
	}
	return printIdentity(env, id, f.Arg(0)+" (data partition, "+provision.DeviceDir+"), block map "+bm)
}

func writeBmap(image, out string) error {
	f, err := os.Open(image)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := bmap.Create(f, 4096)
	if err != nil {
		return err
	}
	return os.WriteFile(out, m.Marshal(), 0o644)
}
