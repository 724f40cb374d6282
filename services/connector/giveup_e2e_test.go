package connector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Reference §1.2: CONNACK "identifier rejected" and "bad protocol version"
// make the connector give up at once, without retries; each failed attempt
// publishes CONNECTION_ERROR (§1.3), and giving up stops the session, which
// sends CONNECTION_CLOSED. The process stays up and a new provisioning file
// starts a new session.
func TestIDRejectedGivesUpAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		rc   byte
	}{
		{"identifier rejected", 0x02},
		{"bad protocol version", 0x01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			w.adapter.Refuse(tc.rc)
			w.start()
			i := w.awaitCause(0, "CONNECTION_CLOSED")
			got := causes(w.status.all())[:i]
			if want := []string{"CONNECTION_ERROR", "CONNECTION_CLOSED"}; !cmp.Equal(got, want) {
				t.Errorf("statuses %q, want %q", got, want)
			}
			if n := w.adapter.Attempts(); n != 1 {
				t.Errorf("%d connect attempts, want 1", n)
			}
			if !w.alive() {
				t.Fatal("connector exited; it must wait for new provisioning")
			}

			// No retry while it waits: the only attempt after the give-up
			// is the one of the relaunch, which the adapter now accepts.
			w.adapter.Refuse(0)
			w.writeProvisioning()
			j := w.awaitCause(i, "connected")
			got = causes(w.status.all())[i:j]
			if want := []string{"CONNECTION_CLOSED", "PROVISIONING_UPDATE", "connected"}; !cmp.Equal(got, want) {
				t.Errorf("statuses after the new provisioning file %q, want %q", got, want)
			}
			if n := w.adapter.Attempts(); n != 2 {
				t.Errorf("%d connect attempts in all, want 2", n)
			}
		})
	}
}

// writeProvisioning puts a good provisioning file for the world's device in
// place with a rename, so the watcher sees one event and relaunches once.
func (w *world) writeProvisioning() {
	w.t.Helper()
	host, port, _ := strings.Cut(w.adapter.Addr(), ":")
	data := fmt.Sprintf(`{"hub":{"credentials":{"deviceId":%q,"tenantId":%q,"authId":%q,"type":"hashed-password",
		"adapters":[{"type":"mqtt","uri":"tcp://%s","port":%s}],"secrets":[{"passwordBase64":%q}]}}}`,
		deviceID, tenant, authID, host, port, b64(password))
	prov := w.settings["provisioningFile"].(string)
	tmp := filepath.Join(w.dir, "provisioning.tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(tmp, prov); err != nil {
		w.t.Fatal(err)
	}
}
