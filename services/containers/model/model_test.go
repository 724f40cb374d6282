package model

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func valid() *Container {
	c := &Container{Name: "app", Image: Image{Name: "docker.io/library/busybox:latest"}}
	FillDefaults(c)
	return c
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Container)
		want   string
	}{
		{"ok", func(*Container) {}, ""},
		{"no image", func(c *Container) { c.Image.Name = "" }, "the containers image configuration is invalid"},
		{"bad name", func(c *Container) { c.Name = "-x" }, "invalid container name format : -x"},
		{"mount no src", func(c *Container) { c.Mounts = []MountPoint{{Destination: "/a", PropagationMode: "rprivate"}} }, "source and destination must be set for a mount point"},
		{"mount prop", func(c *Container) { c.Mounts = []MountPoint{{Source: "/a", Destination: "/a", PropagationMode: "x"}} }, "propagation mode must be set to one of the supported modes"},
		{"no host config", func(c *Container) { c.HostConfig = nil }, "the containers host config is mandatory and is missing"},
		{"no io", func(c *Container) { c.IOConfig = nil }, "the container's IO config is missing"},
		{"priv devices", func(c *Container) { c.HostConfig.Privileged = true; c.HostConfig.Devices = []DeviceMapping{} }, "cannot create the container as privileged and with specified devices at the same time - choose one of the options"},
		{"priv caps", func(c *Container) {
			c.HostConfig.Privileged = true
			c.HostConfig.ExtraCapabilities = []string{"CAP_NET_ADMIN"}
		}, "cannot create the container as privileged and with specified extra capabilities at the same time - choose one of the options"},
		{"no net", func(c *Container) { c.HostConfig.NetworkMode = "" }, "network mode is not set"},
		{"net none", func(c *Container) { c.HostConfig.NetworkMode = "none" }, "unsupported network mode none"},
		{"host ports", func(c *Container) {
			c.HostConfig.NetworkMode = "host"
			c.HostConfig.PortMappings = []PortMapping{{HostPort: 80, ContainerPort: 80}}
		}, "cannot use port mappings when in host network mode"},
		{"host host_ip", func(c *Container) {
			c.HostConfig.NetworkMode = "host"
			c.HostConfig.ExtraHosts = []string{"x:host_ip_eth0"}
		}, "cannot use the host_ip reserved key or any of its modifications when in host network mode"},
		{"dev perms", func(c *Container) { c.HostConfig.Devices = []DeviceMapping{{PathOnHost: "/a", PathInContainer: "/b"}} }, "the cgroup permissions for device mapping /a:/b are not provided"},
		{"log driver", func(c *Container) { c.HostConfig.LogConfig.DriverConfig.Type = "syslog" }, "unsupported log driver configuration"},
		{"log files", func(c *Container) { c.HostConfig.LogConfig.DriverConfig.MaxFiles = 0 }, "max log files cannot be < 1"},
		{"log size", func(c *Container) { c.HostConfig.LogConfig.DriverConfig.MaxSize = "" }, "max logs size must be set"},
		{"log size fmt", func(c *Container) { c.HostConfig.LogConfig.DriverConfig.MaxSize = "100" }, "invalid format of max logs size - 100"},
		{"rp type", func(c *Container) { c.HostConfig.RestartPolicy.Type = "sometimes" }, "unsupported restart policy type sometimes"},
		{"rp count", func(c *Container) { c.HostConfig.RestartPolicy.MaximumRetryCount = 3 }, "cannot use max retry count when the restart policy is unless-stopped"},
		{"mem min", func(c *Container) { c.HostConfig.Resources = &Resources{Memory: "2M"} }, "minimum memory allowed is 3M"},
		{"swap no mem", func(c *Container) { c.HostConfig.Resources = &Resources{MemorySwap: "10M"} }, "swap memory - 10M, memory must be set as well"},
		{"swap lt mem", func(c *Container) { c.HostConfig.Resources = &Resources{Memory: "20M", MemorySwap: "10M"} }, "swap memory - 10M is less than memory - 20M"},
		{"reservation", func(c *Container) { c.HostConfig.Resources = &Resources{Memory: "20M", MemoryReservation: "30M"} }, "reservation memory - 30M must be lower than memory - 20M"},
		{"env", func(c *Container) { c.Config = &ContainerConfiguration{Env: []string{"1A=b"}} }, "invalid environmental variable declaration provided : 1A=b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(c)
			err := Validate(c)
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsers(t *testing.T) {
	if got, err := ParseSize("1.5k"); err != nil || got != 1536 {
		t.Errorf("ParseSize(1.5k) = %d, %v", got, err)
	}
	for _, bad := range []string{"100", "100B", "-1", ""} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	pm, err := ParsePort("127.0.0.1:5000-5001:80/udp")
	want := PortMapping{Proto: "udp", HostIP: "127.0.0.1", HostPort: 5000, HostPortEnd: 5001, ContainerPort: 80}
	if err != nil || pm != want {
		t.Errorf("ParsePort = %+v, %v; want %+v", pm, err, want)
	}
	if got := pm.String(); got != "127.0.0.1:5000-5001:80/udp" {
		t.Errorf("String() = %q", got)
	}
	d, err := ParseDevice("/dev/a:/dev/b:rw")
	if err != nil || d != (DeviceMapping{"/dev/a", "/dev/b", "rw"}) {
		t.Errorf("ParseDevice = %+v, %v", d, err)
	}
	if _, err := ParseDevice("/dev/a:/dev/b:x"); err == nil {
		t.Error("ParseDevice accepted perms x")
	}
	m, err := ParseMount("/a:/b")
	if err != nil || m != (MountPoint{Source: "/a", Destination: "/b", PropagationMode: "rprivate"}) {
		t.Errorf("ParseMount = %+v, %v", m, err)
	}
	if s, err := ParseSignal("SIGKILL"); err != nil || s != 9 {
		t.Errorf("ParseSignal = %v, %v", s, err)
	}
	if _, err := ParseSignal("300"); err == nil || err.Error() != "invalid signal = 300" {
		t.Errorf("ParseSignal(300) = %v", err)
	}
}

func TestFillDefaults(t *testing.T) {
	c := &Container{ID: "x1", Image: Image{Name: "i"}, HostConfig: &HostConfig{Resources: &Resources{Memory: "200M"}}}
	FillDefaults(c)
	FillMemorySwap(c)
	if c.Name != "x1" || c.HostName != "x1-host" || c.DomainName != "x1-domain" {
		t.Errorf("names: %q %q %q", c.Name, c.HostName, c.DomainName)
	}
	if got := c.HostConfig.Resources.MemorySwap; got != "400M" {
		t.Errorf("swap = %q, want 400M", got)
	}
	want := &LogConfiguration{
		DriverConfig: &LogDriverConfiguration{Type: "json-file", MaxFiles: 2, MaxSize: "100M"},
		ModeConfig:   &LogModeConfiguration{Mode: "blocking"},
	}
	if diff := cmp.Diff(c.HostConfig.LogConfig, want); diff != "" {
		t.Errorf("log config (-got +want):\n%s", diff)
	}
	if c.HostConfig.RestartPolicy.Type != RestartUnlessStopped {
		t.Errorf("restart policy %q", c.HostConfig.RestartPolicy.Type)
	}
}

func TestDetermineUpdateAction(t *testing.T) {
	cur := valid()
	if got := DetermineUpdateAction(nil, cur); got != ActionCreate {
		t.Errorf("nil current: %v", got)
	}
	same := cur.Clone()
	same.HostName = "other"
	if got := DetermineUpdateAction(cur, same); got != ActionCheck {
		t.Errorf("host name only: %v", got)
	}
	upd := cur.Clone()
	upd.HostConfig.RestartPolicy = &RestartPolicy{Type: RestartOnFailure, MaximumRetryCount: 2, RetryTimeout: time.Second}
	if got := DetermineUpdateAction(cur, upd); got != ActionUpdate {
		t.Errorf("restart policy: %v", got)
	}
	re := cur.Clone()
	re.Image.Name = "other"
	if got := DetermineUpdateAction(cur, re); got != ActionRecreate {
		t.Errorf("image: %v", got)
	}
}

func TestDecodeGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/container-*.json")
	if len(files) == 0 {
		t.Fatal("no golden descriptors")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Decode(f, data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		FillDefaults(c)
		if err := Validate(c); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	_, err := Decode("bad.json", []byte(`{"host_config": {"privileged": "yes"}}`))
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("wrong type accepted: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/container-*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode("fuzz", data)
		if err != nil {
			return
		}
		FillDefaults(c)
		_ = Validate(c)
		_ = DetermineUpdateAction(c, c.Clone())
	})
}

func FuzzParseStrings(f *testing.F) {
	for _, s := range []string{"100M", "1.5g", "80:80", "127.0.0.1:5000-5001:80/udp", "/dev/a:/dev/b:rwm", "/a:/b:rshared", "SIGTERM", "9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if pm, err := ParsePort(s); err == nil {
			back, err := ParsePort(pm.String())
			if err != nil {
				t.Fatalf("ParsePort(%q).String() = %q does not parse: %v", s, pm.String(), err)
			}
			norm := func(p PortMapping) PortMapping {
				if p.HostPortEnd == 0 {
					p.HostPortEnd = p.HostPort
				}
				if p.HostIP == "0.0.0.0" {
					p.HostIP = ""
				}
				return p
			}
			if norm(back) != norm(pm) {
				t.Fatalf("round trip %q: %+v != %+v", s, back, pm)
			}
		}
		_, _ = ParseSize(s)
		_, _ = ParseDevice(s)
		_, _ = ParseMount(s)
		_, _ = ParseSignal(s)
	})
}
