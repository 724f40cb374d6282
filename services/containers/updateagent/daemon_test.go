package updateagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kantofw/kanto/internal/mosquittotest"
	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	imgsvc "github.com/kantofw/kanto/services/containers/api/services/images"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/cmtest"
	cua "github.com/kantofw/kanto/services/containers/updateagent"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/updatemanager"
)

// One containerd and one kanto binary for the package, set up by the first
// test that needs a daemon; each such test runs its own container-management
// daemon (a real process) on its own bridge. The unit tests of the package
// (container, parameters) need none of it.
var env struct {
	once       sync.Once
	setupErr   error
	dir        string
	containerd *cmtest.Containerd
	kanto      string
	archive    string
}

const testImage = "docker.io/library/kua-busybox:test"

func TestMain(m *testing.M) {
	code := m.Run()
	if env.containerd != nil {
		env.containerd.Stop()
	}
	if env.dir != "" {
		os.RemoveAll(env.dir)
	}
	os.Exit(code)
}

// setup builds kanto, writes the test image and starts containerd, once.
func setup() error {
	env.once.Do(func() {
		dir, err := os.MkdirTemp("", "kua")
		if err != nil {
			env.setupErr = err
			return
		}
		env.dir = dir
		if env.kanto, env.setupErr = cmtest.BuildKanto(dir); env.setupErr != nil {
			return
		}
		img, err := cmtest.BusyboxImage("sh")
		if err != nil {
			env.setupErr = err
			return
		}
		env.archive = filepath.Join(dir, "busybox.tar")
		if env.setupErr = img.WriteOCIArchive(env.archive, testImage); env.setupErr != nil {
			return
		}
		env.containerd, env.setupErr = cmtest.StartContainerd(filepath.Join(dir, "ctrd"))
	})
	return env.setupErr
}

var bridgeN struct {
	sync.Mutex
	n int
}

// daemon starts a container-management daemon with the test image.
func daemon(t testing.TB) ctrsvc.ContainersClient {
	t.Helper()
	cmtest.Requirements(t) // skips (fails under CI=true) unless root with the tools
	if err := setup(); err != nil {
		t.Fatal(err)
	}
	bridgeN.Lock()
	bridgeN.n++
	n := bridgeN.n
	bridgeN.Unlock()
	dir, err := os.MkdirTemp(env.dir, "d")
	if err != nil {
		t.Fatal(err)
	}
	bridge := fmt.Sprintf("kua%d", n)
	args := cmtest.DaemonArgs(dir, env.containerd.Socket, bridge, fmt.Sprintf("10.215.%d.0/24", n))
	for i, a := range args {
		if a == "kanto-cm-test" {
			args[i] = "kanto-ua-test" // our own containerd namespace
		}
	}
	d := cmtest.StartDaemon(t, env.kanto, dir, args)
	conn, err := grpc.Dial("unix://"+d.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cl := ctrsvc.NewContainersClient(conn)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Logs())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r, err := cl.List(ctx, &ctrsvc.ListContainersRequest{}); err == nil {
			for _, c := range r.Containers {
				_, _ = cl.Remove(ctx, &ctrsvc.RemoveContainerRequest{Id: c.Id, Force: true})
			}
		}
		conn.Close()
		d.Stop()
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	if _, err := imgsvc.NewImagesClient(conn).Import(context.Background(), &imgsvc.ImportRequest{Path: env.archive}); err != nil {
		t.Fatalf("import: %v", err)
	}
	return cl
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// rig is a broker, the containers agent on a daemon, the update manager
// and a cloud-side observer of the final feedback.
type rig struct {
	t     testing.TB
	api   ctrsvc.ContainersClient
	cloud *mqtt.Client
	mu    sync.Mutex
	final map[string]updateapi.Feedback
	agent map[string][]updateapi.Status
	ch    chan struct{}
}

func newRig(t testing.TB, api ctrsvc.ContainersClient) *rig {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	dir := t.TempDir()
	r := &rig{t: t, api: api, final: map[string]updateapi.Feedback{}, agent: map[string][]updateapi.Status{}, ch: make(chan struct{}, 1)}
	db, err := store.Open(filepath.Join(dir, "agent.db"), "containers-update-agent", updateagent.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	dom := &cua.Domain{Name: "containers", API: api, SystemContainers: []string{"system"}, Log: logging.Discard()}
	a := updateagent.New(updateagent.Options{Domain: "containers", DB: db, Log: logging.Discard(),
		MQTT: mqtt.Options{URL: b.URL(), ClientID: "containers-agent", CleanSession: true, AutoReconnect: true}}, dom)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })

	cfg := updatemanager.Defaults()
	cfg.ThingsEnabled = false
	cfg.Connection.Broker = b.URL()
	cfg.Database = filepath.Join(dir, "um.db")
	cfg.Agents = map[string]*updatemanager.AgentConfig{"containers": {ReadTimeout: updatemanager.Duration(10 * time.Second)}}
	s, _ := updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard()})
	mdone := make(chan error, 1)
	go func() { mdone <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-mdone })

	r.cloud = mqtt.New(mqtt.Options{URL: b.URL(), ClientID: "cloud", CleanSession: true})
	ready := make(chan struct{}, 1)
	h := func(_ context.Context, m mqtt.Message) {
		e, err := updateapi.ParseEnvelope(m.Payload)
		if err != nil {
			return
		}
		if m.Topic == "deviceupdate/currentstate" {
			select {
			case ready <- struct{}{}:
			default:
			}
			return
		}
		var f updateapi.Feedback
		_ = json.Unmarshal(e.Payload, &f)
		r.mu.Lock()
		if m.Topic == "containersupdate/desiredstatefeedback" {
			r.agent[e.ActivityID] = append(r.agent[e.ActivityID], f.Status)
		} else if f.Status == updateapi.StatusCompleted || f.Status == updateapi.StatusIncomplete || f.Status == updateapi.StatusIdentificationFailed {
			r.final[e.ActivityID] = f
		}
		r.mu.Unlock()
		select {
		case r.ch <- struct{}{}:
		default:
		}
	}
	for _, f := range []string{"deviceupdate/desiredstatefeedback", "deviceupdate/currentstate", "containersupdate/desiredstatefeedback"} {
		if err := r.cloud.Subscribe(ctxT(t), f, 1, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.cloud.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := r.cloud.WaitConnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cloud.Close)
	select {
	case <-ready:
	case <-time.After(time.Minute):
		t.Fatal("manager did not publish its current state")
	}
	return r
}

// apply sends a desired state and waits for the final feedback.
func (r *rig) apply(id string, comps []updateapi.Component) updateapi.Feedback {
	r.t.Helper()
	ds := updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "containers", Components: comps}}}
	b, _ := updateapi.NewEnvelope(id, time.Now(), ds)
	if err := r.cloud.Publish(ctxT(r.t), mqtt.Message{Topic: "deviceupdate/desiredstate", QoS: 1, Payload: b}); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.After(3 * time.Minute)
	for {
		r.mu.Lock()
		f, ok := r.final[id]
		r.mu.Unlock()
		if ok {
			return f
		}
		select {
		case <-r.ch:
		case <-deadline:
			r.t.Fatalf("no final feedback for %s", id)
		}
	}
}

// sleepCmd runs until stopped and exits at once on SIGTERM (a PID 1 without
// a handler ignores it, and every stop would wait the full timeout).
const sleepCmd = "trap 'exit 0' TERM; sleep 600 & wait"

func sleeper(name string, env ...string) updateapi.Component {
	c := updateapi.Component{ID: name, Version: "test", Config: []updateapi.KeyValue{
		{Key: "image", Value: testImage}, {Key: "cmd", Value: "sh"}, {Key: "cmd", Value: "-c"}, {Key: "cmd", Value: sleepCmd}}}
	for _, e := range env {
		c.Config = append(c.Config, updateapi.KeyValue{Key: "env", Value: e})
	}
	return c
}

type view struct {
	id      string
	running bool
	env     []string
}

func containers(t testing.TB, api ctrsvc.ContainersClient) map[string][]view {
	r, err := api.List(ctxT(t), &ctrsvc.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]view{}
	for _, c := range r.Containers {
		out[c.Name] = append(out[c.Name], view{id: c.Id, running: c.GetState().GetRunning(), env: c.GetConfig().GetEnv()})
	}
	return out
}

func createRunning(t testing.TB, api ctrsvc.ContainersClient, name string) string {
	r, err := api.Create(ctxT(t), &ctrsvc.CreateContainerRequest{Container: &pb.Container{Name: name, Image: &pb.Image{Name: testImage},
		Config: &pb.ContainerConfiguration{Cmd: []string{"sh", "-c", sleepCmd}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Start(ctxT(t), &ctrsvc.StartContainerRequest{Id: r.Container.Id}); err != nil {
		t.Fatal(err)
	}
	return r.Container.Id
}

func TestDesiredContainersAgainstDaemon(t *testing.T) {
	api := daemon(t)
	legacy := createRunning(t, api, "legacy")
	system := createRunning(t, api, "system")
	r := newRig(t, api)

	f := r.apply("c-1", []updateapi.Component{sleeper("web"), sleeper("db", "MODE=a")})
	if f.Status != updateapi.StatusCompleted {
		t.Fatalf("c-1: %s %q", f.Status, f.Message)
	}
	want := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	r.mu.Lock()
	got := slices.Clone(r.agent["c-1"])
	r.mu.Unlock()
	if !slices.Equal(got[:len(want)-1], want[:len(want)-1]) {
		t.Errorf("agent feedback %v, want %v", got, want)
	}
	cs := containers(t, api)
	if len(cs["legacy"]) != 0 {
		t.Errorf("legacy (%s) not destroyed: %+v", legacy, cs["legacy"])
	}
	if len(cs["system"]) != 1 || cs["system"][0].id != system || !cs["system"][0].running {
		t.Errorf("system container touched: %+v", cs["system"])
	}
	for _, n := range []string{"web", "db"} {
		if len(cs[n]) != 1 || !cs[n][0].running {
			t.Errorf("%s: %+v", n, cs[n])
		}
	}
	oldDB := cs["db"][0].id

	// Same desired state again: nothing to do.
	if f := r.apply("c-2", []updateapi.Component{sleeper("web"), sleeper("db", "MODE=a")}); f.Status != updateapi.StatusCompleted || len(f.Actions) != 0 {
		t.Errorf("c-2: %s %+v", f.Status, f.Actions)
	}
	// A changed env recreates db; web stays.
	if f := r.apply("c-3", []updateapi.Component{sleeper("web"), sleeper("db", "MODE=b")}); f.Status != updateapi.StatusCompleted || len(f.Actions) != 1 {
		t.Errorf("c-3: %s %q %+v", f.Status, f.Message, f.Actions)
	}
	cs = containers(t, api)
	if len(cs["db"]) != 1 || cs["db"][0].id == oldDB || !cs["db"][0].running || !slices.Contains(cs["db"][0].env, "MODE=b") {
		t.Errorf("db not recreated: %+v (old %s)", cs["db"], oldDB)
	}
	// A missing image fails at DOWNLOAD; the rest is cleaned up, nothing
	// half-created stays.
	bad := sleeper("broken")
	bad.Config[0].Value = "127.0.0.1:1/kua-missing:none" // refused on loopback
	f = r.apply("c-4", []updateapi.Component{sleeper("web"), sleeper("db", "MODE=b"), bad})
	if f.Status != updateapi.StatusIncomplete || !strings.Contains(f.Message, "[containers]") {
		t.Errorf("c-4: %s %q", f.Status, f.Message)
	}
	if cs := containers(t, api); len(cs["broken"]) != 0 || len(cs["db"]) != 1 || !cs["db"][0].running {
		t.Errorf("after the failed update: %+v", cs)
	}
}
