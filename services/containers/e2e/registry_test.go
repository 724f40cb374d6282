package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/containers/model"
)

// writeConfig writes a daemon config file (upstream's JSON keys) and
// returns the --cfg-file flag for it.
func writeConfig(t *testing.T, cfg map[string]any) []string {
	t.Helper()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--cfg-file", p}
}

func registryConfig(r *cmtest.Registry, user, pass string) map[string]any {
	return map[string]any{"containers": map[string]any{
		"insecure_registries": []string{},
		"registry_configurations": map[string]any{
			r.Host: map[string]any{
				"credentials": map[string]string{"user_id": user, "password": pass},
				"transport":   map[string]string{"root_ca": r.CA},
			},
		},
	}}
}

// TestRegistryTLSBasicAuth pulls from a docker-registry with TLS (custom CA)
// and basic auth configured through the config file, which is honoured
// together with the command-line flags.
func TestRegistryTLSBasicAuth(t *testing.T) {
	cmtest.Requirements(t)
	reg := cmtest.StartRegistry(t, t.TempDir(), cmtest.RegistryOptions{TLS: true, User: "kanto", Pass: "s3cret"})
	img, err := cmtest.BusyboxImage("sh", "-c", "echo pulled-ok")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push(img, "kanto/busybox", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	d := setup(t, writeConfig(t, registryConfig(reg, "kanto", "s3cret"))...)
	other, err := reg.Push(img, "kanto/other", "2")
	if err != nil {
		t.Fatal(err)
	}
	if got := cli(t, d, "pull", other); !strings.Contains(got, "fetching manifest") || !strings.Contains(got, "pulled "+other) {
		t.Errorf("pull progress: %q", got)
	}
	out, errOut, code := d.CLI("create", "-n", "pulled", "--rp", "no", ref)
	if code != 0 {
		t.Fatalf("create: %s %s", out, errOut)
	}
	if !strings.Contains(errOut, "pulled "+ref) {
		t.Errorf("no pull progress on stderr: %q", errOut)
	}
	id := strings.TrimSpace(out)
	cli(t, d, "start", id)
	waitStatus(t, d, id, model.Exited)
	if logs := cli(t, d, "logs", id); !strings.Contains(logs, "pulled-ok") {
		t.Errorf("logs: %s", logs)
	}
	// GC on request: the image stays while used, goes once unused.
	if got := cli(t, d, "prune"); strings.Contains(got, ref) {
		t.Errorf("prune removed an image in use: %s", got)
	}
	cli(t, d, "remove", id)
	if got := cli(t, d, "prune"); !strings.Contains(got, "removed "+ref) {
		t.Errorf("prune: %q", got)
	}
	if got := cli(t, d, "images"); strings.Contains(got, ref) {
		t.Errorf("image still listed after prune: %s", got)
	}
}

func TestRegistryWrongCredentials(t *testing.T) {
	cmtest.Requirements(t)
	reg := cmtest.StartRegistry(t, t.TempDir(), cmtest.RegistryOptions{TLS: true, User: "kanto", Pass: "s3cret"})
	img, _ := cmtest.BusyboxImage()
	ref, err := reg.Push(img, "kanto/busybox", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	d := setup(t, writeConfig(t, registryConfig(reg, "kanto", "wrong"))...)
	errOut := cliFail(t, d, "create", "-n", "denied", ref)
	if !strings.Contains(errOut, "401 Unauthorized") && !strings.Contains(errOut, "unauthorized") {
		t.Errorf("wrong credentials: %s", errOut)
	}
	if got := cli(t, d, "list"); strings.TrimSpace(got) != "No containers found." {
		t.Errorf("something was created: %s", got)
	}
}

func TestInsecureRegistry(t *testing.T) {
	cmtest.Requirements(t)
	reg := cmtest.StartRegistry(t, t.TempDir(), cmtest.RegistryOptions{})
	img, _ := cmtest.BusyboxImage()
	ref, err := reg.Push(img, "plain/busybox", "2")
	if err != nil {
		t.Fatal(err)
	}
	// Not declared insecure: HTTPS to a plain-HTTP registry fails.
	d := setup(t)
	cliFail(t, d, "create", ref)
	// Declared insecure by flag (the config file sets none): works.
	d2 := setup(t, append(writeConfig(t, map[string]any{"containers": map[string]any{"insecure_registries": []string{}}}),
		"--ccl-insecure-registries", reg.Host)...)
	cli(t, d2, "create", ref)
}

func TestBadInput(t *testing.T) {
	d := setup(t)
	id := strings.TrimSpace(cli(t, d, "create", "-n", "keep", testImage))
	before := cli(t, d, "get", id)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	port := testenv.FreePort(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"invalid JSON", []string{"create", "-f", write("bad.json", "{\"image\": {\"name\": \"x\"},\n  oops}")}, "bad.json:2:3"},
		{"wrong field type", []string{"create", "-f", write("type.json", `{"image": {"name": "x"}, "host_config": {"privileged": "yes"}}`)}, `"host_config.privileged" must be bool`},
		{"file and flags", []string{"create", "-f", write("ok.json", `{"image": {"name": "x"}}`), "-n", "x"}, "no other flags are expected when creating a container from file"},
		{"no image", []string{"create"}, "container image argument is expected"},
		{"bad image ref", []string{"create", "docker.io/library/UPPER CASE:??"}, "invalid reference format"},
		{"unreachable registry", []string{"create", fmt.Sprintf("127.0.0.1:%d/none/img:1", port)}, "connection refused"},
		{"unknown id", []string{"start", "no-such-id"}, "The requested container with ID = no-such-id was not found."},
		{"unknown name", []string{"stop", "-n", "nobody"}, "The requested container with name = nobody was not found. Try using an ID instead."},
		{"name clash", []string{"create", "-n", "keep", testImage}, "container with name = keep already exists"},
		{"bad name", []string{"create", "-n", "-bad", testImage}, "invalid container name format : -bad"},
		{"bad memory", []string{"create", "-m", "100", testImage}, "invalid format of memory - 100"},
		{"bad port", []string{"create", "--ports", "99999:80", testImage}, "incorrect port mapping configuration 99999:80"},
		{"bad signal", []string{"stop", "-s", "SIGNOPE", id}, "invalid signal = SIGNOPE"},
		{"forced remove, bad time", []string{"remove", "-f", "--time", "soon", id}, `time: invalid duration "soon"`},
		{"unknown filter", []string{"list", "--filter", "color=red"}, "no filter: color"},
		{"rename same", []string{"rename", id, "keep"}, "the new name = keep shouldn't be the same"},
		{"id and name", []string{"get", id, "-n", "keep"}, "Container ID and --name (-n) cannot be provided at the same time - use only one of them"},
		{"neither id nor name", []string{"get"}, "You must provide either an ID or a name for the container via --name (-n) "},
		{"unpause created", []string{"unpause", id}, "is not paused - cannot unpause it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errOut := cliFail(t, d, tt.args...)
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.want)
			}
		})
	}
	// Nothing changed.
	if got := cli(t, d, "list", "-q"); strings.TrimSpace(got) != id {
		t.Errorf("containers after bad input: %q", got)
	}
	if after := cli(t, d, "get", id); after != before {
		t.Errorf("container changed:\nbefore %s\nafter %s", before, after)
	}
	// An unreachable daemon.
	_, errOut, code := cmtest.RunCLI(env.kanto, "--host", filepath.Join(dir, "none.sock"), "--timeout", "1", "list")
	if code != 1 || !strings.Contains(errOut, "error while dialing") {
		t.Errorf("unreachable daemon: exit %d %q", code, errOut)
	}
}

// TestDaemonBadConfig: an invalid config file stops the daemon with the
// file, line and column.
func TestDaemonBadConfig(t *testing.T) {
	cmtest.Requirements(t)
	if env.setupErr != nil {
		t.Fatal(env.setupErr)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte("{\n  \"manager\": {\"default_ctrs_stop_timeout\": true}\n}\n"), 0o644)
	out, errOut, code := runKanto(t, "container-management", "--cfg-file", p)
	if code != 1 || !strings.Contains(errOut, "config.json") {
		t.Errorf("bad config: exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(p, []byte(`{"containers": {"runc_runtime": "crun"}}`), 0o644)
	_, errOut, code = runKanto(t, "container-management", "--cfg-file", p)
	if code != 1 || !strings.Contains(errOut, "unexpected runc runtime = crun") {
		t.Errorf("bad runtime: exit %d %s", code, errOut)
	}
}

// TestRegistryClientCertificate: a registry that requires a client
// certificate, configured through transport.client_cert/client_key.
func TestRegistryClientCertificate(t *testing.T) {
	cmtest.Requirements(t)
	reg := cmtest.StartRegistry(t, t.TempDir(), cmtest.RegistryOptions{ClientAuth: true})
	img, _ := cmtest.BusyboxImage()
	ref, err := reg.Push(img, "mtls/busybox", "1")
	if err != nil {
		t.Fatal(err)
	}
	// Without the client certificate the handshake fails.
	d := setup(t, writeConfig(t, registryConfig(reg, "", ""))...)
	cliFail(t, d, "create", ref)
	cfg := map[string]any{"containers": map[string]any{
		"insecure_registries": []string{},
		"registry_configurations": map[string]any{reg.Host: map[string]any{
			"transport": map[string]string{"root_ca": reg.CA, "client_cert": reg.ClientCert, "client_key": reg.ClientKey},
		}},
	}}
	d2 := setup(t, writeConfig(t, cfg)...)
	cli(t, d2, "create", ref)
}
