package vmtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/internal/testenv"
)

// serveFiles serves files on the host's loopback; the guest reaches it as
// 10.0.2.2:port.
func serveFiles(t *testing.T, files map[string]string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for name, path := range files {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// The full path of an update: the OTA agent in the device (kanto fw agent)
// gets an install request on its local MQTT API, downloads a signed bundle
// from the host, writes slot B, arms it and reboots; GRUB boots B on
// trial, the agent's health checks pass and it commits. Then a bad update
// (a service that crashes) goes to slot A; its trial boot fails and the
// device comes back on B.
func TestOTAThroughAgent(t *testing.T) {
	Require(t)
	t.Parallel()
	keys := filepath.Join(images.Dir(t), "keys")
	v1 := images.Build(t, "ota-v1", builder.Config{Version: "1.0.0", KeysDir: keys, BrokerListen: "0.0.0.0", NoBundle: true})
	v2 := images.Build(t, "ota-v2", builder.Config{Version: "2.0.0", KeysDir: keys, BrokerListen: "0.0.0.0"})
	bad := images.Build(t, "ota-bad", builder.Config{Version: "2.0.1-bad", KeysDir: keys, BrokerListen: "0.0.0.0",
		Services: []initcfg.Service{{Name: "broken", Exec: []string{"/usr/bin/kanto", "no-such-service"}, After: []string{"mosquitto"}}},
		Health:   initcfg.Health{TimeoutSec: 8}})
	httpPort := serveFiles(t, map[string]string{"good.kfw": v2.Bundle, "bad.kfw": bad.Bundle})
	brokerPort := testenv.FreePort(t)
	m := Boot(t, v1.Disk, qemu.Options{HostFwd: []string{fmt.Sprintf("tcp:127.0.0.1:%d-:1883", brokerPort)}})
	expect(t, m, step{event.Init, []string{"slot", "A", "version", "1.0.0"}}, step{event.ServicesUp, nil})

	// One short MQTT session per request: the device reboots in between.
	install := func(name string) {
		t.Helper()
		requestInstall(t, brokerPort, fmt.Sprintf("http://10.0.2.2:%d/%s", httpPort, name))
		t.Logf("%6.2fs install %s requested", m.Since().Seconds(), name)
	}

	install("good.kfw")
	expect(t, m, step{event.Shutdown, []string{"action", "reboot"}},
		regexp.MustCompile(`KANTO-GRUB slot=B .*B_OK=1 B_TRY=2`),
		step{event.Init, []string{"slot", "B", "version", "2.0.0"}},
		step{event.ServicesUp, []string{"slot", "B"}})
	// The agent commits as soon as its checks pass (the init's "healthy"
	// line may then already say trial=false).
	expect(t, m, regexp.MustCompile(`\[fw-agent\].*update state.*to=committed`))

	install("bad.kfw")
	expect(t, m, step{event.Shutdown, []string{"action", "reboot"}},
		regexp.MustCompile(`KANTO-GRUB slot=A .*A_OK=1 A_TRY=2`),
		step{event.Init, []string{"slot", "A", "version", "2.0.1-bad"}},
		step{event.Shutdown, []string{"action", "reboot"}},
		regexp.MustCompile(`KANTO-GRUB slot=B .*A_OK=0`),
		step{event.Init, []string{"slot", "B", "version", "2.0.0"}},
		step{event.Healthy, []string{"slot", "B", "trial", "false"}})
	m.Stop()
	wantEnv(t, m.Disk, map[string]string{"B_OK": "1", "B_TRY": "0", "A_OK": "0"})
}

// Power cut while the agent writes slot B: the next boot comes up on A (B
// was marked bad before its first byte was written), and the agent finds
// its interrupted install in its database and resumes it.
func TestPowerCutDuringInstall(t *testing.T) {
	Require(t)
	t.Parallel()
	m, fwd := installGood(t)
	expect(t, m, regexp.MustCompile(`\[fw-agent\].*update state.*to=installing`))
	time.Sleep(2 * time.Second) // well inside the write of the slot
	m.Stop()
	// The environment is read by GRUB itself (after a power cut the FAT
	// may hold changes only a FAT driver's recovery accepts; mtools can
	// refuse it).
	m = BootInPlace(t, m.Disk, fwd)
	expect(t, m, regexp.MustCompile(`KANTO-GRUB slot=A ORDER=A B A_OK=1 A_TRY=0 B_OK=0`),
		step{event.Init, []string{"slot", "A", "version", "1.0.0"}},
		regexp.MustCompile(`\[fw-agent\].*resuming update.*state=installing`))
	m.Stop()
}

// Power cut at the environment switch: the agent has written slot B and
// armed it (the boot environment now names B first, on trial) and the
// power goes before the reboot it asked for. The armed environment was
// synced before the agent logged the state, so GRUB boots B on trial; the
// agent finds its interrupted update, verifies the slot and commits it.
// (A cut inside the environment write itself is covered at file level:
// firmware/bootenv's interrupted-write tests, for grubenv and U-Boot.)
func TestPowerCutAtEnvSwitch(t *testing.T) {
	Require(t)
	t.Parallel()
	m, fwd := installGood(t)
	expect(t, m, regexp.MustCompile(`\[fw-agent\].*update state.*to=installed`))
	m.Stop()
	m = BootInPlace(t, m.Disk, fwd)
	expect(t, m, regexp.MustCompile(`KANTO-GRUB slot=B .*B_OK=1 B_TRY=2`),
		step{event.Init, []string{"slot", "B", "version", "2.0.0"}},
		regexp.MustCompile(`\[fw-agent\].*resuming update.*state=(installed|rebooting)`),
		regexp.MustCompile(`\[fw-agent\].*update state.*to=committed`))
	m.Stop()
	wantEnv(t, m.Disk, map[string]string{"B_OK": "1", "B_TRY": "0"})
}

// installGood boots image 1.0.0 with its broker forwarded to the host and
// asks its OTA agent to install 2.0.0 from the host; it returns the
// machine and the QEMU options to boot its disk again.
func installGood(t *testing.T) (*Machine, qemu.Options) {
	t.Helper()
	keys := filepath.Join(images.Dir(t), "keys")
	v1 := images.Build(t, "ota-v1", builder.Config{Version: "1.0.0", KeysDir: keys, BrokerListen: "0.0.0.0", NoBundle: true})
	v2 := images.Build(t, "ota-v2", builder.Config{Version: "2.0.0", KeysDir: keys, BrokerListen: "0.0.0.0"})
	httpPort := serveFiles(t, map[string]string{"good.kfw": v2.Bundle})
	brokerPort := testenv.FreePort(t)
	fwd := qemu.Options{HostFwd: []string{fmt.Sprintf("tcp:127.0.0.1:%d-:1883", brokerPort)}}
	m := Boot(t, v1.Disk, fwd)
	expect(t, m, step{event.ServicesUp, []string{"slot", "A"}})
	requestInstall(t, brokerPort, fmt.Sprintf("http://10.0.2.2:%d/good.kfw", httpPort))
	return m, fwd
}

// requestInstall sends one install request to the agent's local MQTT API
// through the forwarded broker port.
func requestInstall(t *testing.T, brokerPort int, source string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", brokerPort)).
		SetClientID("vmtest-install").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	deadline := time.Now().Add(30 * time.Second)
	for {
		tok := c.Connect()
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connecting to the device broker: %v", tok.Error())
		}
		time.Sleep(time.Second)
	}
	defer c.Disconnect(250)
	b, _ := json.Marshal(map[string]string{"correlationId": "vmtest", "source": source})
	if tok := c.Publish("kanto/fw/request/install", 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing the install request: %v", tok.Error())
	}
}
