package twins_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/twins"
)

// notifySocket listens where systemd would (NOTIFY_SOCKET) and returns the
// datagrams the service sends.
func notifySocket(t *testing.T) (path string, got <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 64)
	// Owned by the test: ends when the socket is closed at cleanup.
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case ch <- string(buf[:n]):
			default:
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return path, ch
}

// awaitNotify waits for a datagram containing want.
func awaitNotify(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	ctx := ctxT(t)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, want) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("service never notified %q", want)
		}
	}
}

// retainedStatus returns the connection status the broker keeps, as a local
// app connecting now gets it.
func (w *world) retainedStatus() mqtt.Message {
	w.t.Helper()
	return kantotest.Retained(ctxT(w.t), w.t, w.local.URL(), "edge/connection/remote/status")
}

// checkWaitingStatus checks the status of a service waiting for its
// identity: as the suite connector's (reference §1.3), retained, QoS 1,
// timestamp in Unix seconds.
func (w *world) checkWaitingStatus(cause string) {
	w.t.Helper()
	m := w.retainedStatus()
	var payload map[string]any
	if err := json.Unmarshal(m.Payload, &payload); err != nil {
		w.t.Fatalf("status %s: %v", m.Payload, err)
	}
	if ts, ok := payload["timestamp"].(float64); !ok || ts <= 0 || ts > 1e11 {
		w.t.Errorf("status %s: timestamp is not Unix seconds", m.Payload)
	}
	delete(payload, "timestamp")
	if diff := cmp.Diff(map[string]any{"connected": false, "cause": cause}, payload); diff != "" || !m.Retained || m.QoS != 1 {
		w.t.Errorf("status %s retained %v QoS %d (-want +got):\n%s", m.Payload, m.Retained, m.QoS, diff)
	}
}

// refused checks that a twin command sent while the device has no identity
// is answered with upstream's "unknown" error on the thing's local topic.
func (w *world) refused(corr string) {
	w.t.Helper()
	w.publish("e", cmd(deviceID, "modify", "/features/early", map[string]any{"properties": map[string]any{"v": 1}}, corr))
	resp, _ := w.events.AwaitTopic(w.t, 0, "command//"+deviceID+"/req//errors-response", withCorr(corr))
	e := parse(resp.Payload)
	v, _ := e.Value.(map[string]any)
	if e.Status != 400 || e.Topic != "ns/gw/things/twin/errors" || v["error"] != "unknown" ||
		!strings.Contains(v["message"].(string), "no identity") || !strings.Contains(v["description"].(string), "Try it later") {
		w.t.Errorf("twin command without an identity: %s", resp.Payload)
	}
}

// First boot, the factory flow: the image boots before provisioning.json is
// written. The twins start anyway, tell systemd they are ready, report
// PROVISIONING_MISSING as the suite connector does, refuse twin commands
// and buffer telemetry. The file written, they report CONNECTION_CLOSED and
// PROVISIONING_UPDATE (the connector's relaunch), connect to the cloud
// under the new identity, serve twin commands end to end and send the
// buffered telemetry.
func TestFirstBootWithoutProvisioningFile(t *testing.T) {
	w := newWorld(t)
	w.unprovisioned()
	sock, notes := notifySocket(t)
	info := kantotest.Record(t, w.app, "edge/thing/response")
	w.proc = kantotest.Start(t, w.dir, "local-digital-twins", w.settings, append(append([]string(nil), env...), "NOTIFY_SOCKET="+sock))
	i := w.awaitStatus(0, "PROVISIONING_MISSING")
	awaitNotify(t, notes, "READY=1")
	w.checkWaitingStatus("PROVISIONING_MISSING")
	if !strings.Contains(w.proc.Log.String(), "settings incomplete; waiting for a provisioning file") {
		t.Error("no log line on the missing identity")
	}
	// Still running and handling local traffic.
	w.refused("early1")
	w.publish("t", `{"seq":"waiting"}`)
	if _, err := os.Stat(filepath.Join(w.dir, "db", "things.db")); err == nil {
		t.Error("a twin database was created without a device identity")
	}

	w.writeProvisioning(w.goodProvisioning())
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_UPDATE")
	w.awaitStatus(i, "connected")
	info.AwaitTopic(t, 0, "#", func(p []byte) bool { return string(p) == `{"deviceId":"ns:gw","tenantId":"T"}` })

	w.localModify("first", "f1")
	w.hubSawFeature("first", "f1")
	got, err := w.nb.Await(ctxT(t), "telemetry/#", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Topic != "telemetry/T/ns:gw" || string(got[0].Payload) != `{"seq":"waiting"}` {
		t.Errorf("telemetry buffered while waiting: %s %s", got[0].Topic, got[0].Payload)
	}
	// The refused command was neither applied nor forwarded.
	w.publish("e", cmd(deviceID, "retrieve", "/features/early", nil, "r1"))
	resp, _ := w.events.AwaitTopic(t, 0, "command///req//errors-response", withCorr("r1"))
	if e := parse(resp.Payload); e.Status != 404 {
		t.Errorf("feature of a refused command: %s", resp.Payload)
	}
	for _, m := range w.nb.Messages("event/#") {
		if parse(m.Payload).Headers["correlation-id"] == "early1" {
			t.Errorf("refused command reached the cloud: %s", m.Payload)
		}
	}
}

// A provisioning file that cannot be used at start gives PROVISIONING_ERROR
// (not an exit); one that parses but lacks the identity too; the next good
// file brings the device up.
func TestFirstBootBrokenProvisioningFile(t *testing.T) {
	w := newWorld(t)
	w.unprovisioned()
	w.writeProvisioning(`{"hub":{"credentials":{`)
	w.start()
	i := w.awaitStatus(0, "PROVISIONING_ERROR")
	w.checkWaitingStatus("PROVISIONING_ERROR")
	w.refused("early1")

	w.writeProvisioning(`{"hub":{"credentials":{"tenantId":"T"}}}`)
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_ERROR")
	w.refused("early2")

	w.writeProvisioning(w.goodProvisioning())
	i = w.awaitStatus(i, "CONNECTION_CLOSED")
	i = w.awaitStatus(i, "PROVISIONING_UPDATE")
	w.awaitStatus(i, "connected")
	w.localModify("first", "f1")
	w.hubSawFeature("first", "f1")
}

// Errors the provisioning file cannot fix still end the start with exit
// status 1, whether or not the file exists: an empty local address (the
// static checks) and a local TLS setup that cannot be made (Run).
func TestFirstBootFatalErrors(t *testing.T) {
	for name, mod := range map[string]func(map[string]any){
		"no local address": func(s map[string]any) { s["localAddress"] = "" },
		"local CA cert absent": func(s map[string]any) {
			s["localAddress"], s["localCACert"] = "ssl://127.0.0.1:1", "/nonexistent/ca.crt"
		},
		"bad log config": func(s map[string]any) { s["logFileSize"] = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			w.unprovisioned()
			mod(w.settings)
			w.start()
			code, err := w.proc.Wait(ctxT(t))
			if err != nil {
				t.Fatal("still running")
			}
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if n := len(w.status.All()); n != 0 {
				t.Errorf("%d statuses published, want none", n)
			}
		})
	}
}

func mainEnv() *cli.Env {
	return &cli.Env{Name: "local-digital-twins", Stdout: &kantotest.SyncBuffer{}, Stderr: &kantotest.SyncBuffer{},
		Getenv: func(string) string { return "" }}
}

func mainArgs(w *world) []string {
	return []string{"-localAddress", w.local.URL(), "-address", "", "-provisioningFile", w.settings["provisioningFile"].(string),
		"-thingsDb", w.settings["thingsDb"].(string), "-bufferFile", w.settings["bufferFile"].(string), "-logFile", ""}
}

// Main with a missing provisioning file and an otherwise valid
// configuration does not return: it waits for the file (and returns nil
// once cancelled). Without a provisioning file configured, a missing
// identity is a start error (exit status 1), and so is an empty local
// address with one.
func TestMainWaitsForProvisioning(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() { done <- twins.Main(ctx, mainEnv(), mainArgs(w)) }()
	w.awaitStatus(0, "PROVISIONING_MISSING")
	select {
	case err := <-done:
		t.Fatalf("Main returned while waiting for the provisioning file: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Main after cancellation: %v", err)
	}

	for name, args := range map[string][]string{
		"no provisioning file": append(mainArgs(w), "-provisioningFile", ""),
		"no local address":     append(mainArgs(w), "-localAddress", ""),
	} {
		err := twins.Main(ctxT(t), mainEnv(), args)
		if !errors.Is(err, twins.ErrConfig) {
			t.Errorf("%s: Main returned %v, want a config error", name, err)
		}
		if code := cli.ExitCode(err); code != 1 {
			t.Errorf("%s: exit status %d, want 1", name, code)
		}
	}
}
