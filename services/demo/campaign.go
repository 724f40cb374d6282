package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/provision"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/internal/mosquitto"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// ErrStep means a step of the demo did not happen (or not in time); the
// message says which.
var ErrStep = errors.New("demo step failed")

// CampaignOptions configure the firmware campaign demo.
type CampaignOptions struct {
	// RepoDir is the module root (default: found above the working
	// directory); the image build cache is RepoDir/out/cache.
	RepoDir string
	// OutDir holds the images, the device disk and the console log
	// (default RepoDir/out/demo).
	OutDir string
	// Kanto is a prebuilt static linux/amd64 kanto binary for the images
	// ("" builds one).
	Kanto string
	Out   io.Writer
	// BootTimeout bounds each boot, from GRUB's slot choice to the init's
	// verdict (default 90 s).
	BootTimeout time.Duration
	// StepTimeout bounds each campaign, from the apply command to the
	// final feedback (default 4 minutes).
	StepTimeout time.Duration
}

// CampaignResult is what a run showed, for tests.
type CampaignResult struct {
	Boots   []time.Duration // each boot: GRUB's slot choice to services up (or unhealthy)
	Good    updateapi.Feedback
	Bad     updateapi.Feedback
	Console string
}

// campaign is one run of the demo.
type campaign struct {
	o     CampaignOptions
	tl    *timeline
	nb    *cloudpeer.Northbound
	vm    *qemu.VM
	res   CampaignResult
	thing ditto.Topic // the device's thing (namespace, name)
	id    *provision.Identity

	app       softwareComponent
	feedback  chan cloudFeedback
	inventory chan cloudInventory

	mu        sync.Mutex
	lastShown string
	grubAt    time.Time // last GRUB slot choice, for boot durations
}

type cloudFeedback struct {
	activity string
	f        updateapi.Feedback
}

type cloudInventory struct {
	activity      string
	version, slot string
	app           string // version of the script-installed package, "" if none
}

type softwareComponent struct{ path, url string }

// AppVersion is the version of the script-installed package.
const AppVersion = "1.0"

// Campaign runs the firmware campaign demo: it builds the images (cached),
// starts the cloud peer, boots the device in QEMU, waits for it to come
// online, then applies two desired states from the cloud through the
// device's update manager: a good firmware update A→B (installed, rebooted
// into, healthy, committed, reported) with a package installed by script
// (the software domain), and a bad one (its trial boot fails the health
// check, GRUB falls back, the failure is reported). It returns an error
// wrapping ErrStep when a step did not happen.
func Campaign(ctx context.Context, o CampaignOptions) (*CampaignResult, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	c := &campaign{o: o, tl: &timeline{w: o.Out, start: time.Now()},
		feedback: make(chan cloudFeedback, 1024), inventory: make(chan cloudInventory, 1024)}
	err := c.run(ctx)
	if c.vm != nil {
		c.vm.Kill()
		c.res.Console = c.vm.Log()
	}
	return &c.res, err
}

func (o *CampaignOptions) defaults() error {
	if o.RepoDir == "" {
		d, err := builder.RepoDir()
		if err != nil {
			return err
		}
		o.RepoDir = d
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(o.RepoDir, "out", "demo")
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 90 * time.Second
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = 4 * time.Minute
	}
	return nil
}

func (c *campaign) say(format string, args ...any) { c.tl.say(format, args...) }

func (c *campaign) run(ctx context.Context) error {
	c.say("build: the firmware images (cached by content; the first build takes a few minutes)")
	im, err := BuildImages(ctx, c.o.RepoDir, c.o.OutDir, c.o.Kanto, c.say)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kanto-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// The cloud: Mosquitto behind the Hono MQTT adapter simulator, and the
	// back end's northbound view of it.
	hubPort, err := freePort()
	if err != nil {
		return err
	}
	hub, err := mosquitto.Start(work, hubPort, mosquitto.Options{SysLog: true, Extra: "max_queued_messages 100000\n"})
	if err != nil {
		return fmt.Errorf("cloud broker: %w", err)
	}
	defer hub.Stop()
	adapter, err := cloudpeer.NewAdapter(hub.Addr(), nil, nil)
	if err != nil {
		return err
	}
	defer adapter.Close()
	if c.nb, err = cloudpeer.NewNorthbound(ctx, hub.URL()); err != nil {
		return err
	}
	defer c.nb.Close()
	_, adapterPort, _ := net.SplitHostPort(adapter.Addr())
	c.say("cloud: Hono MQTT adapter simulator on %s (the guest's tcp://10.0.2.2:%s), Mosquitto hub on %s", adapter.Addr(), adapterPort, hub.Addr())

	app := filepath.Join(work, "install.sh")
	if err := os.WriteFile(app, []byte(fmt.Sprintf(appScript, AppVersion, AppVersion, AppVersion)), 0o644); err != nil {
		return err
	}
	files, err := serveFiles(map[string]string{"good.kfw": im.Good.Bundle, "bad.kfw": im.Bad.Bundle, "install.sh": app})
	if err != nil {
		return err
	}
	defer files.Close()

	// The factory step: a copy of the disk with the device's identity.
	const password = "demo-device-secret"
	devDisk := filepath.Join(c.o.OutDir, "device.img")
	c.id, err = provisionDisk(im.Factory.Disk, devDisk, provision.Options{Serial: "demo-1",
		Address: "tcp://10.0.2.2:" + adapterPort, Password: password})
	if err != nil {
		return fmt.Errorf("provisioning the device disk: %w", err)
	}
	authID := strings.ReplaceAll(c.id.DeviceID, ":", "_")
	adapter.AddCredential(cloudpeer.Credential{Tenant: c.id.TenantID, AuthID: authID, Password: password})
	ns, name, _ := ditto.SplitID(c.id.DeviceID)
	c.thing = ditto.Topic{Namespace: ns, Name: name, Group: "things"}
	c.say("factory: %s provisioned as %s (tenant %s, auth-id %s)", devDisk, c.id.DeviceID, c.id.TenantID, authID)

	followCtx, stopFollow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopFollow(); wg.Wait() }()
	wg.Add(1)
	// Owned by run; ends with followCtx.
	go func() { defer wg.Done(); c.follow(followCtx) }()

	logf, err := os.Create(filepath.Join(c.o.OutDir, "console.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	c.vm, err = qemu.Start(ctx, qemu.Options{Disk: devDisk, Console: &console{log: logf, show: c.onConsole}})
	if err != nil {
		return fmt.Errorf("starting QEMU: %w", err)
	}
	c.say("device: QEMU started (TCG, OVMF + GRUB, user network); console in %s", logf.Name())

	// Online: the connector holds its command subscription on the hub, and
	// the update manager reported the running firmware.
	wctx, cancel := context.WithTimeout(ctx, 2*c.o.BootTimeout)
	_, err = c.nb.AwaitSubscription(wctx, "command//+/req/#", true)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: the device did not connect to the cloud within %v (adapter saw %d CONNECTs)", ErrStep, 2*c.o.BootTimeout, adapter.Attempts())
	}
	c.say("cloud: device %s is online (its suite-connector subscribed to its commands on the hub)", c.id.DeviceID)
	if err := c.awaitVersion(ctx, VersionFactory, "A", "", c.o.BootTimeout); err != nil {
		return err
	}

	// The good update.
	mark := len(c.vm.Lines())
	c.app = softwareComponent{path: app, url: files.guestURL("install.sh")}
	fb, err := c.apply(ctx, "good", im.Good.Bundle, files.guestURL("good.kfw"), VersionGood)
	if err != nil {
		return err
	}
	c.res.Good = fb
	if fb.Status != updateapi.StatusCompleted {
		return fmt.Errorf("%w: the good update ended %s: %s", ErrStep, fb.Status, fb.Message)
	}
	if err := c.expectConsole(mark, "the good update",
		`KANTO-GRUB slot=B .*B_TRY=2`, `KANTO-EVENT init slot=B version=`+regexp.QuoteMeta(VersionGood),
		`KANTO-EVENT services-up slot=B`, `\[fw-update-agent\].*from=verifying to=committed`); err != nil {
		return err
	}
	if err := c.awaitVersion(ctx, VersionGood, "B", AppVersion, c.o.BootTimeout); err != nil {
		return err
	}
	c.say("result: update %s → %s installed into slot B, rebooted, healthy, committed; hello-app %s installed by script; reported COMPLETED", VersionFactory, VersionGood, AppVersion)

	// The bad update: its trial boot fails, GRUB falls back to B.
	mark = len(c.vm.Lines())
	fb, err = c.apply(ctx, "bad", im.Bad.Bundle, files.guestURL("bad.kfw"), VersionBad)
	if err != nil {
		return err
	}
	c.res.Bad = fb
	if fb.Status != updateapi.StatusIncomplete {
		return fmt.Errorf("%w: the bad update ended %s (want INCOMPLETE): %s", ErrStep, fb.Status, fb.Message)
	}
	if !hasAction(fb, updateapi.ActionUpdateFailure) && !hasAction(fb, updateapi.ActionActivationFailure) {
		c.say("note: final feedback actions: %s", describeActions(fb.Actions))
	}
	if err := c.expectConsole(mark, "the bad update",
		`KANTO-GRUB slot=A .*A_TRY=2`, `KANTO-EVENT init slot=A version=`+regexp.QuoteMeta(VersionBad),
		`KANTO-EVENT unhealthy slot=A`, `KANTO-GRUB slot=B .*A_OK=0`,
		`KANTO-EVENT init slot=B version=`+regexp.QuoteMeta(VersionGood)); err != nil {
		return err
	}
	if err := c.expectConsole(mark, "the bad update's trial boot",
		`KANTO-EVENT init slot=A version=`+regexp.QuoteMeta(VersionBad), `\[fw-update-agent\].*from=verifying to=rolled-back`); err != nil {
		return err
	}
	if err := c.awaitVersion(ctx, VersionGood, "B", AppVersion, c.o.BootTimeout); err != nil {
		return err
	}
	c.say("result: update %s → %s failed its health check on slot A; GRUB fell back to slot B (%s), reported INCOMPLETE", VersionGood, VersionBad, VersionGood)

	c.mu.Lock()
	boots := append([]time.Duration(nil), c.res.Boots...)
	c.mu.Unlock()
	var bs []string
	for _, b := range boots {
		bs = append(bs, fmt.Sprintf("%.1fs", b.Seconds()))
		if b > c.o.BootTimeout {
			return fmt.Errorf("%w: a boot took %v, over the limit of %v", ErrStep, b, c.o.BootTimeout)
		}
	}
	c.say("done: %d boots (GRUB to services up or unhealthy: %s); the device runs %s on slot B", len(boots), strings.Join(bs, ", "), VersionGood)
	return nil
}

// apply sends one desired state (the firmware domain, one component) to
// the device's UpdateManager feature and waits for the final feedback.
func (c *campaign) apply(ctx context.Context, label, bundlePath, url, version string) (updateapi.Feedback, error) {
	sum, size, err := fileDigest(bundlePath)
	if err != nil {
		return updateapi.Feedback{}, err
	}
	activity := fmt.Sprintf("demo-%s-%d", label, time.Now().UnixMilli())
	ds := updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "firmware", Components: []updateapi.Component{{
		ID: "os", Version: version, Config: []updateapi.KeyValue{
			{Key: "url", Value: url}, {Key: "sha256", Value: sum}, {Key: "size", Value: fmt.Sprint(size)}}}}}}}
	appSum, _, err := fileDigest(c.app.path)
	if err != nil {
		return updateapi.Feedback{}, err
	}
	// The package stays in every desired state (once installed, the
	// software domain has nothing to do for it).
	ds.Domains = append(ds.Domains, updateapi.Domain{ID: "software", Components: []updateapi.Component{{
		ID: "hello-app", Version: AppVersion, Config: []updateapi.KeyValue{
			{Key: "url", Value: c.app.url}, {Key: "sha256", Value: appSum}, {Key: "artifactType", Value: "plain"}}}}})
	value, _ := json.Marshal(map[string]any{"activityId": activity, "timestamp": time.Now().UnixMilli(), "desiredState": ds})
	tp := c.thing
	tp.Channel, tp.Criterion, tp.Action = "live", "messages", "apply"
	env := &ditto.Envelope{Topic: tp.String(), Path: "/features/UpdateManager/inbox/messages/apply", Value: value,
		Headers: ditto.Headers{"correlation-id": activity, "response-required": true, "content-type": ditto.ContentTypeJSON}}
	b, _ := env.Marshal()
	c.say("cloud → device: apply %s: desired state firmware:os %s from %s (%.1f MiB, sha256 %s…), software:hello-app %s (install script)", activity, version, url, float64(size)/(1<<20), sum[:12], AppVersion)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	status, _, err := c.nb.Command(cctx, c.id.DeviceID, "apply", b)
	cancel()
	if err != nil {
		return updateapi.Feedback{}, fmt.Errorf("%w: the device did not answer the apply command: %w", ErrStep, err)
	}
	c.say("device → cloud: apply accepted (status %s)", status)
	if status != "204" {
		return updateapi.Feedback{}, fmt.Errorf("%w: apply answered with status %s", ErrStep, status)
	}
	return c.awaitFinal(ctx, activity, c.o.StepTimeout)
}

func finalStatus(s updateapi.Status) bool {
	switch s {
	case updateapi.StatusCompleted, updateapi.StatusIncomplete, updateapi.StatusIncompleteInconsistent,
		updateapi.StatusIdentificationFailed, updateapi.StatusSuperseded:
		return true
	}
	return false
}

// awaitFinal waits for the campaign's final feedback.
func (c *campaign) awaitFinal(ctx context.Context, activity string, timeout time.Duration) (updateapi.Feedback, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var last updateapi.Status = "none"
	for {
		select {
		case f := <-c.feedback:
			if f.activity != activity {
				continue
			}
			last = f.f.Status
			if finalStatus(f.f.Status) {
				return f.f, nil
			}
		case <-c.vm.Done():
			return updateapi.Feedback{}, fmt.Errorf("%w: QEMU exited during %s (last feedback %s)", ErrStep, activity, last)
		case <-t.C:
			return updateapi.Feedback{}, fmt.Errorf("%w: no final feedback for %s within %v (last feedback %s)", ErrStep, activity, timeout, last)
		case <-ctx.Done():
			return updateapi.Feedback{}, ctx.Err()
		}
	}
}

// awaitVersion waits for a current state reporting the firmware version
// on slot (and the package version app, unless "").
func (c *campaign) awaitVersion(ctx context.Context, version, slot, app string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	last := "none"
	for {
		select {
		case inv := <-c.inventory:
			last = inv.version + " on slot " + inv.slot + ", hello-app " + inv.app
			if inv.version == version && inv.slot == slot && (app == "" || inv.app == app) {
				return nil
			}
		case <-c.vm.Done():
			return fmt.Errorf("%w: QEMU exited while waiting for firmware %s on slot %s", ErrStep, version, slot)
		case <-t.C:
			return fmt.Errorf("%w: no current state with firmware %s on slot %s (hello-app %q) within %v (last: %s)", ErrStep, version, slot, app, timeout, last)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// expectConsole checks that the console showed the patterns in order
// since line from.
func (c *campaign) expectConsole(from int, what string, patterns ...string) error {
	lines := c.vm.Lines()[from:]
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i].Text) {
			i++
		}
		if i == len(lines) {
			return fmt.Errorf("%w: %s: the console never showed %q", ErrStep, what, p)
		}
		i++
	}
	return nil
}

// onConsole shows a console marker line and times the boots.
func (c *campaign) onConsole(line string) {
	c.say("device console: %s", line)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.HasPrefix(line, "KANTO-GRUB "):
		c.grubAt = time.Now()
	case strings.HasPrefix(line, "KANTO-EVENT services-up"), strings.HasPrefix(line, "KANTO-EVENT unhealthy"):
		if !c.grubAt.IsZero() {
			c.res.Boots = append(c.res.Boots, time.Since(c.grubAt))
			c.grubAt = time.Time{}
		}
	}
}

// follow prints what the device sends to the cloud and hands feedback and
// current states to the waiting steps.
func (c *campaign) follow(ctx context.Context) {
	n := 0
	for {
		msgs, err := c.nb.Await(ctx, "event/#", n+1)
		if err != nil {
			return
		}
		for _, m := range msgs[n:] {
			c.onEvent(ctx, m)
		}
		n = len(msgs)
	}
}

func (c *campaign) onEvent(ctx context.Context, m cloudpeer.Message) {
	env, err := ditto.Parse(m.Payload)
	if err != nil {
		c.say("device → cloud: %s (not a Ditto message)", m.Topic)
		return
	}
	tp, _ := ditto.ParseTopic(env.Topic)
	switch {
	case tp.Channel == "live" && tp.Criterion == "messages" && tp.Action == "feedback":
		var v struct {
			ActivityID string             `json:"activityId"`
			Feedback   updateapi.Feedback `json:"desiredStateFeedback"`
		}
		if json.Unmarshal(env.Value, &v) != nil {
			return
		}
		line := fmt.Sprintf("feedback %s %s", v.Feedback.Status, describeActions(v.Feedback.Actions))
		if v.Feedback.Message != "" {
			line += " — " + shorten(v.Feedback.Message, 80)
		}
		if c.showOnce(v.ActivityID + line) {
			c.say("device → cloud: %s", line)
		}
		select {
		case c.feedback <- cloudFeedback{activity: v.ActivityID, f: v.Feedback}:
		case <-ctx.Done():
		}
	case env.Path == "/features/UpdateManager/properties":
		var v struct {
			ActivityID string              `json:"activityId"`
			Inventory  updateapi.Inventory `json:"inventory"`
		}
		if json.Unmarshal(env.Value, &v) != nil {
			return
		}
		inv := cloudInventory{activity: v.ActivityID}
		for _, n := range v.Inventory.SoftwareNodes {
			switch n.ID {
			case "firmware:os":
				inv.version = n.Version
				inv.slot, _ = updateapi.ConfigValue(n.Parameters, "slot")
			case "software:hello-app":
				inv.app = n.Version
			}
		}
		apps := "no hello-app"
		if inv.app != "" {
			apps = "hello-app " + inv.app
		}
		c.say("device → cloud: current state: firmware %s on slot %s, %s (update manager inventory, %d software nodes)", inv.version, inv.slot, apps, len(v.Inventory.SoftwareNodes))
		select {
		case c.inventory <- inv:
		case <-ctx.Done():
		}
	case env.Path == "/features/UpdateManager":
		c.say("device → cloud: the UpdateManager feature of thing %s:%s is up", tp.Namespace, tp.Name)
	case tp.Channel == "twin" && strings.HasPrefix(env.Path, "/features/") && strings.Count(env.Path, "/") == 2:
		c.say("device → cloud: twin %s of feature %s", tp.Action, strings.TrimPrefix(env.Path, "/features/"))
	default:
		c.say("device → cloud: %s %s", env.Topic, env.Path)
	}
}

// showOnce reports whether line differs from the last feedback shown (the
// manager repeats RUNNING reports).
func (c *campaign) showOnce(line string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if line == c.lastShown {
		return false
	}
	c.lastShown = line
	return true
}

func describeActions(as []updateapi.Action) string {
	var parts []string
	for _, a := range as {
		s := fmt.Sprintf("[%s %s: %s", a.Component.ID, a.Component.Version, a.Status)
		if a.Progress > 0 && a.Progress < 100 {
			s += fmt.Sprintf(" %d%%", a.Progress)
		}
		if a.Message != "" {
			s += ", " + shorten(a.Message, 260)
		}
		parts = append(parts, s+"]")
	}
	return strings.Join(parts, " ")
}

func hasAction(f updateapi.Feedback, st updateapi.ActionStatus) bool {
	for _, a := range f.Actions {
		if a.Status == st {
			return true
		}
	}
	return false
}

// shorten cuts long messages (health check output) for the timeline; the
// whole text is in the error or the result.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
