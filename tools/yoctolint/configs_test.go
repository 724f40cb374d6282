package yoctolint

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/services/awsconnector"
	"github.com/kantofw/kanto/services/connector"
	cmdaemon "github.com/kantofw/kanto/services/containers/daemon"
	"github.com/kantofw/kanto/services/fileupload"
	"github.com/kantofw/kanto/services/fwagent"
	"github.com/kantofw/kanto/services/softwareupdate"
	"github.com/kantofw/kanto/services/twins"
	"github.com/kantofw/kanto/services/updatemanager"
)

// serviceConfigs gives, per service command, a pointer to the service's own
// defaults: its config loader decodes the JSON file over them
// (services/internal/config.Decode, which is json.Unmarshal with positions
// in errors). Services not listed are not written yet; their configs are
// only checked as strict JSON (TestConfigsAreStrictJSON). Add a line when a
// service lands.
var serviceConfigs = map[string]func() any{
	"suite-connector":      func() any { s := connector.Defaults(); return &s },
	"container-management": func() any { c := cmdaemon.Defaults(); return &c },
	"update-manager":       func() any { c := updatemanager.Defaults(); return &c },
	"file-upload":          func() any { c := fileupload.Defaults(); return &c },
	"software-update":      func() any { c := softwareupdate.Defaults(); return &c },
	"fw-update-agent":      func() any { c := fwagent.Defaults(); return &c },
	"local-digital-twins":  func() any { s := twins.Defaults(); return &s },
	"aws-connector":        func() any { s := awsconnector.Defaults(); return &s },
}

// deviceSpecific services validate settings that only a provisioned device
// has (cloud address, device id): their packaged config is decoded strictly
// but not validated. Both ship disabled, as upstream's.
var deviceSpecific = map[string]bool{"local-digital-twins": true, "aws-connector": true}

// TestConfigsLoadIntoServices decodes each packaged config into the
// service's config type: a wrong type fails as it would at startup, and an
// unknown key (ignored by the services, as upstream does) fails here because
// in a packaged file it is a typo. A config type with a Validate method (the
// service's static checks) must accept the result too.
func TestConfigsLoadIntoServices(t *testing.T) {
	r := recipe(t, "kanto")
	for _, cmd := range r.Words("KANTO_SERVICES") {
		short := strings.TrimPrefix(cmd, "kanto-")
		t.Run(cmd, func(t *testing.T) {
			path, ok := r.FindFile(short + ".json")
			if !ok {
				t.Fatalf("%s.json not found", short)
			}
			newCfg, ok := serviceConfigs[cmd]
			if !ok {
				t.Skipf("no config type for %s yet (service not written): only checked as strict JSON", cmd)
			}
			dec := json.NewDecoder(bytes.NewReader(readFile(t, path)))
			dec.DisallowUnknownFields()
			cfg := newCfg()
			if err := dec.Decode(cfg); err != nil {
				t.Fatalf("%s: %v", filepath.Base(path), err)
			}
			if v, ok := cfg.(interface{ Validate() error }); ok && !deviceSpecific[cmd] {
				if err := v.Validate(); err != nil {
					t.Errorf("%s: the service's Validate rejects it: %v", filepath.Base(path), err)
				}
			}
		})
	}
}

// TestFirmwareAgentFindsBoardConfig: the firmware agent's packaged config
// names the slots file and keyring that kanto-boot-config installs.
func TestFirmwareAgentFindsBoardConfig(t *testing.T) {
	r := recipe(t, "kanto")
	path, ok := r.FindFile("fw-update-agent.json")
	if !ok {
		t.Fatal("fw-update-agent.json not found")
	}
	var cfg struct {
		Slots   string `json:"slots"`
		Keyring string `json:"keyring"`
	}
	if err := json.Unmarshal(readFile(t, path), &cfg); err != nil {
		t.Fatal(err)
	}
	installed := strings.Fields(recipe(t, "kanto-boot-config").Get("FILES:${PN}"))
	for _, p := range []string{cfg.Slots, cfg.Keyring} {
		if !contains(installed, p) {
			t.Errorf("fw-update-agent.json names %s, kanto-boot-config installs %v", p, installed)
		}
	}
}

// TestUpdateDomainsServed: the update manager's packaged agents are exactly
// the domains the packaged domain agents serve (container-management's
// update agent, software-update, fw-update-agent), so no campaign waits for
// an agent the image does not run.
func TestUpdateDomainsServed(t *testing.T) {
	r := recipe(t, "kanto")
	decode := func(name string, v any) {
		t.Helper()
		path, ok := r.FindFile(name)
		if !ok {
			t.Fatalf("%s not found", name)
		}
		if err := json.Unmarshal(readFile(t, path), v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	um := updatemanager.Defaults()
	decode("update-manager.json", &um)
	cm := cmdaemon.Defaults()
	decode("container-management.json", &cm)
	su := softwareupdate.Defaults()
	decode("software-update.json", &su)
	fw := fwagent.Defaults()
	decode("fw-update-agent.json", &fw)

	served := map[string]bool{su.Domain: true, fw.Domain: true}
	if cm.UpdateAgt.Enable {
		served[cm.UpdateAgt.Domain] = true
	}
	for d := range um.Agents {
		if !served[d] {
			t.Errorf("update-manager.json waits for domain %q, which no packaged agent serves", d)
		}
	}
	for d := range served {
		if um.Agents[d] == nil {
			t.Errorf("domain %q is served but not in update-manager.json's agents", d)
		}
	}
}
