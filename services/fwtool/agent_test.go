package fwtool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// testDevice makes a file-backed GRUB device booted from A, a signed
// bundle, and a reboot hook that only records the request (tests must never
// reach the real reboot).
func testDevice(t *testing.T) (dir string, p func(string) string) {
	t.Helper()
	dir = t.TempDir()
	p = func(n string) string { return filepath.Join(dir, n) }
	if r := run(t, BundleMain, "keygen", "--dir", p("keys")); r.code != 0 {
		t.Fatal(r)
	}
	os.WriteFile(p("rootfs.img"), bundletest.Image(1<<20, 9), 0o644)
	if r := run(t, BundleMain, "create", "--key", p("keys/signing.key"), "--cert", p("keys/signing.crt"), "--compatible", "qemu-x86_64", "--version", "9", "--image", "rootfs="+p("rootfs.img"), "-o", p("b.kfw")); r.code != 0 {
		t.Fatal(r)
	}
	os.WriteFile(p("slotA"), make([]byte, 2<<20), 0o644)
	os.WriteFile(p("slotB"), make([]byte, 2<<20), 0o644)
	os.WriteFile(p("cmdline"), []byte("kanto.slot=A\n"), 0o644)
	if err := bootenv.NewGrubEnv(p("grubenv")).Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("slots.json"), []byte(`{"compatible":"qemu-x86_64","bootloader":"grub","grubenv":"grubenv","stateDir":"state","cmdline":"cmdline",
 "slots":[{"name":"A","class":"rootfs","device":"slotA"},{"name":"B","class":"rootfs","device":"slotB"}]}`), 0o644)
	os.MkdirAll(p("hooks"), 0o755)
	os.WriteFile(p("hooks/reboot"), []byte("#!/bin/sh\necho requested >> "+p("reboots")+"\n"), 0o755)
	os.MkdirAll(p("health.d"), 0o755)
	os.WriteFile(p("bootid"), []byte("boot-1\n"), 0o644)
	return dir, p
}

// startAgent runs `kanto fw agent` until the returned stop is called.
func startAgent(t *testing.T, p func(string) string, broker string, extra ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var out bytes.Buffer
	go func() {
		defer wg.Done()
		env := &cli.Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		if err := FwMain(ctx, env, append([]string{"agent", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"),
			"--check-dir", p("health.d"), "--broker", broker, "--log-level", "warn", "--boot-id-file", p("bootid")}, extra...)); err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Log(out.String())
		}
	}
}

func TestAgentMQTTAPI(t *testing.T) {
	broker := mosquittotest.Start(t, mosquittotest.Options{})
	_, p := testDevice(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c := mqtt.New(mqtt.Options{URL: broker.URL(), ClientID: "test-client", Log: slog0()})
	defer c.Close()
	responses := make(chan response, 4)
	statuses := make(chan []byte, 64)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Subscribe(ctx, DefaultTopicPrefix+"/response/+", 1, func(_ context.Context, m mqtt.Message) {
		var r response
		json.Unmarshal(m.Payload, &r)
		responses <- r
	}))
	must(c.Subscribe(ctx, DefaultTopicPrefix+"/status", 1, func(_ context.Context, m mqtt.Message) {
		select {
		case statuses <- m.Payload:
		default:
		}
	}))
	must(c.Connect(ctx))

	waitStatus := func(state string) {
		t.Helper()
		for {
			select {
			case b := <-statuses:
				t.Logf("status: %.200s", b)
				if strings.Contains(string(b), `"state":"`+state+`"`) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no status with state %s", state)
			}
		}
	}
	stop := startAgent(t, p, broker.URL())
	waitStatus("idle")
	req, _ := json.Marshal(request{CorrelationID: "c-1", Source: p("b.kfw")})
	must(c.Publish(ctx, mqtt.Message{Topic: DefaultTopicPrefix + "/request/install", Payload: req, QoS: 1}))
	var r response
	select {
	case r = <-responses:
	case <-ctx.Done():
		t.Fatal("no response to install")
	}
	if !r.OK || r.CorrelationID != "c-1" || r.Update.State != "rebooting" || r.Update.Target != "B" {
		t.Fatalf("install response %+v", r)
	}
	stop()
	if b, _ := os.ReadFile(p("reboots")); !strings.Contains(string(b), "requested") {
		t.Fatal("the reboot hook did not run")
	}

	// The "reboot": GRUB picks B for its trial, the agent starts again,
	// verifies and commits.
	slot, err := bootenvtest.GrubBoot(bootenv.NewGrubEnv(p("grubenv")))
	if err != nil || slot != "B" {
		t.Fatalf("GRUB boots %q, %v", slot, err)
	}
	os.WriteFile(p("cmdline"), []byte("kanto.slot=B\n"), 0o644)
	os.WriteFile(p("bootid"), []byte("boot-2\n"), 0o644)
	stop = startAgent(t, p, broker.URL())
	defer stop()
	waitStatus("committed")
	// The CLI reads the agent's database while the daemon runs.
	if r := run(t, FwMain, "status", "--slots", p("slots.json"), "--json", "--boot-id-file", p("bootid")); r.code != 0 || !strings.Contains(r.stdout, `"state": "committed"`) {
		t.Fatalf("fw status while the agent runs: %+v", r)
	}
	req, _ = json.Marshal(request{CorrelationID: "c-2"})
	must(c.Publish(ctx, mqtt.Message{Topic: DefaultTopicPrefix + "/request/commit", Payload: req, QoS: 1}))
	select {
	case r = <-responses:
	case <-ctx.Done():
		t.Fatal("no response to commit")
	}
	if r.OK || r.CorrelationID != "c-2" || r.Update.State != "committed" {
		t.Fatalf("commit after commit: %+v", r)
	}
}

// TestAgentCloudCheck: after booting the new slot the agent commits only if
// the connector reports the cloud connection (retained status on
// edge/connection/remote/status) within --cloud-within; else it rolls back.
func TestAgentCloudCheck(t *testing.T) {
	for _, connected := range []bool{true, false} {
		t.Run(fmt.Sprintf("connected=%v", connected), func(t *testing.T) {
			broker := mosquittotest.Start(t, mosquittotest.Options{})
			_, p := testDevice(t)
			if r := run(t, FwMain, "install", "--slots", p("slots.json"), "--keyring", p("keys/ca.crt"), "--hooks", p("hooks"), "--boot-id-file", p("bootid"), p("b.kfw")); r.code != 0 {
				t.Fatal(r)
			}
			if slot, _ := bootenvtest.GrubBoot(bootenv.NewGrubEnv(p("grubenv"))); slot != "B" {
				t.Fatalf("GRUB boots %s", slot)
			}
			os.WriteFile(p("cmdline"), []byte("kanto.slot=B\n"), 0o644)
			os.WriteFile(p("bootid"), []byte("boot-2\n"), 0o644)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := mqtt.New(mqtt.Options{URL: broker.URL(), ClientID: "connector", Log: slog0()})
			defer c.Close()
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			status := `{"connected":false,"cause":"CONNECTION_ERROR"}`
			if connected {
				status = `{"connected":true,"timestamp":1}`
			}
			if err := c.Publish(ctx, mqtt.Message{Topic: TopicCloudStatus, Payload: []byte(status), QoS: 1, Retained: true}); err != nil {
				t.Fatal(err)
			}
			within := "30s"
			if !connected {
				within = "300ms" // the check's own limit, the verdict does not depend on timing
			}
			stop := startAgent(t, p, broker.URL(), "--cloud-within", within)
			want := "rolled-back"
			if connected {
				want = "committed"
			}
			for {
				r := run(t, FwMain, "status", "--slots", p("slots.json"), "--json", "--boot-id-file", p("bootid"))
				if strings.Contains(r.stdout, `"state": "`+want+`"`) {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("no %s: %s", want, r.stdout)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !connected {
				// The reboot hook runs after the rolled-back state is
				// persisted: wait for it before stopping the agent.
				for {
					if b, _ := os.ReadFile(p("reboots")); strings.Contains(string(b), "requested") {
						break
					}
					if ctx.Err() != nil {
						t.Fatal("rolled back without rebooting to the previous slot")
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			stop()
		})
	}
}
