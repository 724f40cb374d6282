package updateagent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/protoconv"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

func kvs(pairs ...string) []updateapi.KeyValue {
	var out []updateapi.KeyValue
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, updateapi.KeyValue{Key: pairs[i], Value: pairs[i+1]})
	}
	return out
}

// defaulted is the container the agent builds from just an image.
func defaulted(name, image string) *model.Container {
	c := &model.Container{Name: name, Image: model.Image{Name: image},
		HostConfig: &model.HostConfig{}, IOConfig: &model.IOConfig{}, Config: &model.ContainerConfiguration{}}
	model.FillDefaults(c)
	return c
}

func TestContainer(t *testing.T) {
	tests := []struct {
		name    string
		version string
		config  []updateapi.KeyValue
		want    func(*model.Container) // changes to the defaulted container
	}{
		{"image only", "", kvs("image", "busybox:1"), func(*model.Container) {}},
		{"image from version", "1.2", nil, func(c *model.Container) { c.Image.Name = "c:1.2" }},
		{"log driver keys", "", kvs("image", "busybox:1", "logDriver", "json-file", "logMaxFiles", "5", "logMaxSize", "10M", "logPath", "/var/log/c"),
			func(c *model.Container) {
				c.HostConfig.LogConfig.DriverConfig = &model.LogDriverConfiguration{Type: "json-file", MaxFiles: 5, MaxSize: "10M", RootDir: "/var/log/c"}
			}},
		{"log mode keys", "", kvs("image", "busybox:1", "logMode", "non-blocking", "logMaxBufferSize", "2M"),
			func(c *model.Container) {
				c.HostConfig.LogConfig.ModeConfig = &model.LogModeConfiguration{Mode: "non-blocking", MaxBufferSize: "2M"}
			}},
		{"non-blocking gets the default buffer", "", kvs("image", "busybox:1", "logMode", "non-blocking"),
			func(c *model.Container) {
				c.HostConfig.LogConfig.ModeConfig = &model.LogModeConfiguration{Mode: "non-blocking", MaxBufferSize: "1M"}
			}},
		{"blocking drops the buffer", "", kvs("image", "busybox:1", "logMaxBufferSize", "2M"), func(*model.Container) {}},
		{"driver none drops the file options", "", kvs("image", "busybox:1", "logDriver", "none", "logMaxFiles", "5", "logMaxSize", "1M"),
			func(c *model.Container) {
				c.HostConfig.LogConfig.DriverConfig = &model.LogDriverConfiguration{Type: "none"}
			}},
		{"bad logMaxFiles is skipped", "", kvs("image", "busybox:1", "logMaxFiles", "many"), func(*model.Container) {}},
		{"restart counters on-failure", "", kvs("image", "busybox:1", "restartPolicy", "on-failure", "restartMaxRetries", "3", "restartTimeout", "30"),
			func(c *model.Container) {
				c.HostConfig.RestartPolicy = &model.RestartPolicy{Type: "on-failure", MaximumRetryCount: 3, RetryTimeout: 30 * time.Second}
			}},
		{"restart counters only for on-failure", "", kvs("image", "busybox:1", "restartPolicy", "always", "restartMaxRetries", "3", "restartTimeout", "30"),
			func(c *model.Container) { c.HostConfig.RestartPolicy = &model.RestartPolicy{Type: "always"} }},
		{"booleans as strconv reads them", "", kvs("image", "busybox:1", "privileged", "1", "terminal", "TRUE", "interactive", "yes"),
			func(c *model.Container) { c.HostConfig.Privileged, c.IOConfig.Tty = true, true }},
		{"memory", "", kvs("image", "busybox:1", "memory", "200M", "memoryReservation", "100M", "memorySwap", "400M"),
			func(c *model.Container) {
				c.HostConfig.Resources = &model.Resources{Memory: "200M", MemoryReservation: "100M", MemorySwap: "400M"}
			}},
	}
	d := &Domain{Name: "containers", Log: logging.Discard()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.container(updateapi.Component{ID: "c", Version: tt.version, Config: tt.config})
			if err != nil {
				t.Fatal(err)
			}
			want := defaulted("c", "busybox:1")
			tt.want(want)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(model.Container{}, "ID")); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestContainerErrors(t *testing.T) {
	tests := []struct {
		name   string
		config []updateapi.KeyValue
	}{
		{"no image, no version", nil},
		{"unknown log driver", kvs("image", "busybox:1", "logDriver", "syslog")},
		{"bad log size", kvs("image", "busybox:1", "logMaxSize", "big")},
		{"no log files", kvs("image", "busybox:1", "logMaxFiles", "-1")},
		{"unknown log mode", kvs("image", "busybox:1", "logMode", "sometimes")},
		{"bad buffer size", kvs("image", "busybox:1", "logMode", "non-blocking", "logMaxBufferSize", "lots")},
		{"bad restart counter", kvs("image", "busybox:1", "restartPolicy", "on-failure", "restartMaxRetries", "x")},
	}
	d := &Domain{Name: "containers", Log: logging.Discard()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.container(updateapi.Component{ID: "c", Config: tt.config})
			if !errors.Is(err, ErrComponent) {
				t.Errorf("err = %v, want ErrComponent", err)
			}
		})
	}
}

// running is a defaulted container as the daemon reports it after a start.
func running() *model.Container {
	c := defaulted("c", "busybox:1")
	c.Created = "2024-05-01T10:00:00Z"
	c.State = &model.State{Status: model.Running, Running: true, Pid: 42, StartedAt: "2024-05-01T10:00:01Z"}
	return c
}

func TestParameters(t *testing.T) {
	tests := []struct {
		name    string
		c       func() *model.Container
		verbose bool
		want    []updateapi.KeyValue
	}{
		{"defaults left out", running, false, kvs("image", "busybox:1", "status", "Running", "created", "2024-05-01T10:00:00Z")},
		{"verbose reports defaults", running, true, kvs(
			"image", "busybox:1", "domainName", "c-domain", "hostName", "c-host",
			"terminal", "false", "interactive", "false", "privileged", "false",
			"restartPolicy", "unless-stopped", "restartMaxRetries", "0", "restartTimeout", "0s",
			"network", "bridge",
			"logDriver", "json-file", "logMaxFiles", "2", "logMaxSize", "100M", "logPath", "",
			"logMode", "blocking", "logMaxBufferSize", "",
			"status", "Running", "finishedAt", "", "exitCode", "0", "created", "2024-05-01T10:00:00Z",
			"restartCount", "0", "manuallyStopped", "false", "startedSuccessfullyBefore", "true")},
		{"everything set, stopped", func() *model.Container {
			c := running()
			c.DomainName, c.HostName = "d.example", "h1"
			c.IOConfig.Tty, c.IOConfig.OpenStdin = true, true
			h := c.HostConfig
			h.RestartPolicy = &model.RestartPolicy{Type: "on-failure", MaximumRetryCount: 3, RetryTimeout: 30 * time.Second}
			h.Devices = []model.DeviceMapping{{PathOnHost: "/dev/ttyS0", PathInContainer: "/dev/ttyS1", CgroupPermissions: "rw"}}
			h.PortMappings = []model.PortMapping{{Proto: "udp", HostIP: "0.0.0.0", HostPort: 8080, HostPortEnd: 8080, ContainerPort: 80}}
			h.NetworkMode = "host"
			h.ExtraHosts = []string{"ctrhost:host_ip"}
			h.LogConfig = &model.LogConfiguration{
				DriverConfig: &model.LogDriverConfiguration{Type: "json-file", MaxFiles: 5, MaxSize: "10M", RootDir: "/var/log/c"},
				ModeConfig:   &model.LogModeConfiguration{Mode: "non-blocking", MaxBufferSize: "2M"},
			}
			h.Resources = &model.Resources{Memory: "200M", MemorySwap: "400M"}
			c.Mounts = []model.MountPoint{{Source: "/data", Destination: "/d", PropagationMode: "rprivate"}}
			c.Config.Env = []string{"A=1"}
			c.Config.Cmd = []string{"sh", "-c", "x"}
			c.State = &model.State{Status: model.Exited, Exited: true, Pid: -1, ExitCode: 2,
				StartedAt: "2024-05-01T10:00:01Z", FinishedAt: "2024-05-01T10:05:00Z"}
			c.RestartCount, c.ManuallyStopped = 4, true
			return c
		}, false, kvs(
			"image", "busybox:1", "domainName", "d.example", "hostName", "h1",
			"terminal", "true", "interactive", "true",
			"restartPolicy", "on-failure", "restartMaxRetries", "3", "restartTimeout", "30s",
			"device", "/dev/ttyS0:/dev/ttyS1:rw", "port", "8080:80/udp", "network", "host", "host", "ctrhost:host_ip",
			"logMaxFiles", "5", "logMaxSize", "10M", "logPath", "/var/log/c", "logMode", "non-blocking", "logMaxBufferSize", "2M",
			"memory", "200M", "memorySwap", "400M",
			"mount", "/data:/d:rprivate", "env", "A=1", "cmd", "sh", "cmd", "-c", "cmd", "x",
			"status", "Exited", "finishedAt", "2024-05-01T10:05:00Z", "exitCode", "2", "created", "2024-05-01T10:00:00Z",
			"restartCount", "4", "manuallyStopped", "true", "startedSuccessfullyBefore", "true")},
		{"running hides the last exit", func() *model.Container {
			c := running()
			c.State.FinishedAt, c.State.ExitCode = "2024-05-01T09:00:00Z", 1
			c.ManuallyStopped = true
			return c
		}, false, kvs("image", "busybox:1", "status", "Running", "created", "2024-05-01T10:00:00Z")},
		{"never started", func() *model.Container {
			c := defaulted("c", "busybox:1")
			c.State = &model.State{Status: model.Created, Pid: -1}
			return c
		}, false, kvs("image", "busybox:1", "status", "Created", "created", "")},
		{"log driver none", func() *model.Container {
			c := running()
			c.HostConfig.LogConfig.DriverConfig = &model.LogDriverConfiguration{Type: "none"}
			return c
		}, false, kvs("image", "busybox:1", "logDriver", "none", "logMaxFiles", "0", "status", "Running", "created", "2024-05-01T10:00:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parameters(tt.c(), tt.verbose)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// The inventory gives back the config keys a container was built from.
func TestParametersEchoConfig(t *testing.T) {
	config := kvs("image", "busybox:1", "terminal", "true", "privileged", "true",
		"restartPolicy", "on-failure", "restartMaxRetries", "3",
		"port", "8080:80/tcp", "host", "a:1.2.3.4",
		"logDriver", "none", "logMaxFiles", "0", "logPath", "/l", "logMode", "non-blocking", "logMaxBufferSize", "4M",
		"memory", "64M", "mount", "/a:/b:rshared", "env", "X=1", "cmd", "top")
	d := &Domain{Name: "containers", Log: logging.Discard()}
	c, err := d.container(updateapi.Component{ID: "c", Config: config})
	if err != nil {
		t.Fatal(err)
	}
	c.State = &model.State{Status: model.Created, Pid: -1}
	want := append(config, kvs("status", "Created", "created", "")...)
	if diff := cmp.Diff(want, parameters(c, false)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// lister is the daemon API with only List.
type lister struct {
	Containers
	cs []*model.Container
}

func (l lister) List(context.Context, *ctrsvc.ListContainersRequest, ...grpc.CallOption) (*ctrsvc.ListContainersResponse, error) {
	r := &ctrsvc.ListContainersResponse{}
	for _, c := range l.cs {
		r.Containers = append(r.Containers, protoconv.ToProto(c))
	}
	return r, nil
}

func TestCurrentState(t *testing.T) {
	b := running()
	b.Name, b.DomainName, b.HostName, b.Image.Name = "b", "b-domain", "b-host", "reg.example/b@sha256:abc"
	a := running()
	a.Name, a.DomainName, a.HostName = "a", "a-domain", "a-host"
	api := lister{cs: []*model.Container{b, a}}
	for _, verbose := range []bool{false, true} {
		d := &Domain{Name: "containers", API: api, Version: "1.0", VerboseInventory: verbose, Log: logging.Discard()}
		inv, err := d.CurrentState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ids, versions []string
		for _, n := range inv.SoftwareNodes {
			ids, versions = append(ids, n.ID), append(versions, n.Version)
		}
		if diff := cmp.Diff([]string{"containers-update-agent", "containers:a", "containers:b"}, ids); diff != "" {
			t.Errorf("verbose=%v ids (-want +got)\n%s", verbose, diff)
		}
		if diff := cmp.Diff([]string{"1.0", "1", "sha256:abc"}, versions); diff != "" {
			t.Errorf("verbose=%v versions (-want +got)\n%s", verbose, diff)
		}
		if len(inv.Associations) != 2 {
			t.Errorf("verbose=%v associations: %v", verbose, inv.Associations)
		}
		if diff := cmp.Diff(parameters(a, verbose), inv.SoftwareNodes[1].Parameters); diff != "" {
			t.Errorf("verbose=%v parameters of a through the API (-want +got)\n%s", verbose, diff)
		}
	}
}
