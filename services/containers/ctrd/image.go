package ctrd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Progress receives human-readable pull progress lines; may be nil.
type Progress func(line string)

// EnsureImage returns the image ref, pulling and unpacking it when it is not
// present yet (there is no re-pull for mutable tags, as upstream).
func (c *Client) EnsureImage(ctx context.Context, ref string, progress Progress) (containerd.Image, error) {
	if _, err := reference.ParseDockerRef(ref); err != nil {
		return nil, imageErr("invalid image reference %q: %w", ref, err)
	}
	ctx = c.nsCtx(ctx)
	img, err := c.c.GetImage(ctx, ref)
	if err == nil {
		if ok, _ := img.IsUnpacked(ctx, c.cfg.Snapshotter); !ok {
			if err := img.Unpack(ctx, c.cfg.Snapshotter); err != nil {
				return nil, imageErr("unpack %s: %w", ref, err)
			}
		}
		return img, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("get image %s: %w", ref, err)
	}
	return c.Pull(ctx, ref, progress)
}

// Pull fetches ref from its registry and unpacks it.
func (c *Client) Pull(ctx context.Context, ref string, progress Progress) (containerd.Image, error) {
	ctx = c.nsCtx(ctx)
	if progress == nil {
		progress = func(string) {}
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: c.registryHosts})
	handler := images.HandlerFunc(func(_ context.Context, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		progress(fmt.Sprintf("%s: fetching %s (%d bytes)", short(d.Digest.String()), kind(d.MediaType), d.Size))
		return nil, nil
	})
	progress("pulling " + ref)
	img, err := c.c.Pull(ctx, ref,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(c.cfg.Snapshotter),
		containerd.WithPlatformMatcher(platforms.Default()),
		containerd.WithImageHandler(handler))
	if err != nil {
		// containerd's message names the reference already ("failed to
		// resolve reference ..."); clients see it as upstream shows it.
		return nil, imageErr("%w", err)
	}
	progress("pulled " + ref + " " + img.Target().Digest.String())
	return img, nil
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[i+1 : i+13]
	}
	return d
}

func kind(mt string) string {
	switch {
	case strings.Contains(mt, "index"), strings.Contains(mt, "manifest.list"):
		return "index"
	case strings.Contains(mt, "manifest"):
		return "manifest"
	case strings.Contains(mt, "config"):
		return "config"
	default:
		return "layer"
	}
}

// Import loads an OCI or docker archive (tar) and unpacks its images.
func (c *Client) Import(ctx context.Context, r io.Reader) ([]string, error) {
	ctx = c.nsCtx(ctx)
	imgs, err := c.c.Import(ctx, r, containerd.WithAllPlatforms(false), containerd.WithImportPlatform(platforms.Default()))
	if err != nil {
		return nil, imageErr("import: %w", err)
	}
	var names []string
	for _, i := range imgs {
		img := containerd.NewImage(c.c, i)
		if err := img.Unpack(ctx, c.cfg.Snapshotter); err != nil {
			return nil, imageErr("unpack %s: %w", i.Name, err)
		}
		names = append(names, i.Name)
	}
	return names, nil
}

// Prune deletes the images no container uses (inUse holds the refs the
// daemon's containers name) and lets containerd collect their content.
func (c *Client) Prune(ctx context.Context, inUse []string) ([]string, error) {
	return c.PruneOlder(ctx, inUse, time.Time{})
}

// PruneOlder is Prune for the images created before cutoff (all of them
// when cutoff is zero): the image expiry of the daemon config.
func (c *Client) PruneOlder(ctx context.Context, inUse []string, cutoff time.Time) ([]string, error) {
	ctx = c.nsCtx(ctx)
	all, err := c.c.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, i := range all {
		if slices.Contains(inUse, i.Name) || (!cutoff.IsZero() && i.CreatedAt.After(cutoff)) {
			continue
		}
		if err := c.c.ImageService().Delete(ctx, i.Name, images.SynchronousDelete()); err != nil && !errdefs.IsNotFound(err) {
			return removed, fmt.Errorf("delete image %s: %w", i.Name, err)
		}
		removed = append(removed, i.Name)
	}
	return removed, nil
}

// ImageNames lists the images in the namespace.
func (c *Client) ImageNames(ctx context.Context) ([]string, error) {
	all, err := c.c.ImageService().List(c.nsCtx(ctx))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range all {
		out = append(out, i.Name)
	}
	return out, nil
}

// registryHosts maps a registry host to how it is reached: credentials and
// TLS from the registry configuration, plain HTTP and unverified TLS for
// insecure hosts.
func (c *Client) registryHosts(host string) ([]docker.RegistryHost, error) {
	rc := c.cfg.Registries[host]
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if rc.RootCA != "" {
		pem, err := os.ReadFile(rc.RootCA)
		if err != nil {
			return nil, fmt.Errorf("registry %s root CA: %w", host, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s root CA %s: no certificates", host, rc.RootCA)
		}
		tlsCfg.RootCAs = pool
	}
	if rc.ClientCert != "" && rc.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(rc.ClientCert, rc.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("registry %s client certificate: %w", host, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	insecure := slices.Contains(c.cfg.Insecure, host)
	mk := func(scheme string, tc *tls.Config) docker.RegistryHost {
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     30 * time.Second,
		}
		hc := &http.Client{Transport: tr}
		var creds func(string) (string, string, error)
		if rc.User != "" {
			creds = func(string) (string, string, error) { return rc.User, rc.Password, nil }
		}
		h := host
		if host == "docker.io" {
			h = "registry-1.docker.io"
		}
		return docker.RegistryHost{
			Client:       hc,
			Authorizer:   docker.NewDockerAuthorizer(docker.WithAuthClient(hc), docker.WithAuthCreds(creds)),
			Host:         h,
			Scheme:       scheme,
			Path:         "/v2",
			Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve,
		}
	}
	if insecure {
		skip := tlsCfg.Clone()
		skip.InsecureSkipVerify = true
		return []docker.RegistryHost{mk("https", skip), mk("http", nil)}, nil
	}
	return []docker.RegistryHost{mk("https", tlsCfg)}, nil
}
