package twins_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kantofw/kanto/services/internal/kantotest"
)

// provisioned moves the hub settings out of the configuration into the
// provisioning file (as on a Bosch IoT Suite device) and returns its path.
func (w *world) provisioned() string {
	w.t.Helper()
	prov := w.unprovisioned()
	w.writeProvisioning(w.goodProvisioning())
	return prov
}

// unprovisioned removes the hub settings from the configuration, leaving
// the device without an identity until the provisioning file is written;
// it returns the file's path.
func (w *world) unprovisioned() string {
	for _, k := range []string{"deviceId", "tenantId", "authId", "password"} {
		delete(w.settings, k)
	}
	w.settings["address"] = ""
	return w.settings["provisioningFile"].(string)
}

// goodProvisioning is a provisioning file for the cloud peer.
func (w *world) goodProvisioning() string {
	host, port, _ := strings.Cut(w.adapter.Addr(), ":")
	return fmt.Sprintf(`{"hub":{"credentials":{"deviceId":%q,"tenantId":%q,"authId":%q,"type":"hashed-password",
		"adapters":[{"type":"mqtt","uri":"tcp://%s","port":%s}],
		"secrets":[{"passwordBase64":%q}]},"device":{"authorities":["auto-provisioning-enabled"]}}}`,
		deviceID, tenant, authID, host, port, base64.StdEncoding.EncodeToString([]byte(password)))
}

// writeProvisioning writes the provisioning file.
func (w *world) writeProvisioning(content string) {
	w.t.Helper()
	if err := os.WriteFile(w.settings["provisioningFile"].(string), []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// awaitStatus waits for a status with cause after index from and returns
// the index to wait from next.
func (w *world) awaitStatus(from int, cause string) int {
	w.t.Helper()
	_, i := w.status.AwaitTopic(w.t, from, "#", kantotest.StatusIs(cause))
	return i + 1
}

// localModify changes a feature through the local API and waits for the
// local answer.
func (w *world) localModify(feature, corr string) {
	w.t.Helper()
	w.publish("e", cmd(deviceID, "modify", "/features/"+feature, map[string]any{"properties": map[string]any{"v": corr}}, corr))
	w.events.AwaitTopic(w.t, 0, "command///req//modify-response", withCorr(corr))
}

// hubSawFeature waits until the hub got a modify of the whole feature
// carrying corr as its value (forwarded or sent by the sync).
func (w *world) hubSawFeature(feature, corr string) {
	w.t.Helper()
	w.hubSaw("feature "+feature, func(e envelope) bool {
		v, _ := e.Value.(map[string]any)
		p, _ := v["properties"].(map[string]any)
		return strings.HasSuffix(e.Topic, "/modify") && e.Path == "/features/"+feature && p["v"] == corr
	})
}

// Upstream's way of taking a device offline and back (LDT's integration
// sync test): the provisioning file renamed away ends the hub session and,
// the configuration lacking the hub settings, the service waits with
// PROVISIONING_MISSING while the local twins keep working; renamed back,
// the service announces PROVISIONING_UPDATE, reconnects, and the change
// made while offline reaches the cloud.
func TestProvisioningRenamedAwayAndBack(t *testing.T) {
	w := newWorld(t)
	prov := w.provisioned()
	w.start()
	i := w.awaitStatus(0, "connected")
	w.localModify("before", "b1")
	w.hubSawFeature("before", "b1")

	if err := os.Rename(prov, prov+".away"); err != nil {
		t.Fatal(err)
	}
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_MISSING")
	w.localModify("offline", "off1")
	// Thing info keeps the identity the device had.
	info := kantotest.Record(t, w.app, "edge/thing/response")
	w.publish("edge/thing/request", "")
	info.AwaitTopic(t, 0, "#", func(p []byte) bool { return string(p) == `{"deviceId":"ns:gw","tenantId":"T"}` })

	if err := os.Rename(prov+".away", prov); err != nil {
		t.Fatal(err)
	}
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_UPDATE")
	w.awaitStatus(i, "connected")
	w.hubSawFeature("offline", "off1")
}

// A provisioning file that is not JSON ends the hub session with
// PROVISIONING_ERROR; the service keeps answering local twin commands and
// comes back with the next good file.
func TestProvisioningBrokenFile(t *testing.T) {
	w := newWorld(t)
	prov := w.provisioned()
	good, err := os.ReadFile(prov)
	if err != nil {
		t.Fatal(err)
	}
	w.start()
	i := w.awaitStatus(0, "connected")

	if err := os.WriteFile(prov, []byte(`{"hub":{"credentials":{`), 0o600); err != nil {
		t.Fatal(err)
	}
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_ERROR")
	w.localModify("meanwhile", "m1")
	w.publish("e", cmd(deviceID, "retrieve", "/features/meanwhile", nil, "r1"))
	resp, _ := w.events.AwaitTopic(t, 0, "command///req//retrieve-response", withCorr("r1"))
	if e := parse(resp.Payload); e.Status != 200 {
		t.Errorf("local retrieve with a broken provisioning file: %s", resp.Payload)
	}

	if err := os.WriteFile(prov, good, 0o600); err != nil {
		t.Fatal(err)
	}
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_UPDATE")
	w.awaitStatus(i, "connected")
	w.hubSawFeature("meanwhile", "m1")
}
