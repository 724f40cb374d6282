// Package feature is the AutoUploadable Ditto feature of the file upload
// service: it publishes the feature, answers the inbox operations (trigger,
// start, cancel, activate, deactivate), runs the uploads through storage
// providers and reports their progress in the lastUpload property.
//
// The handshake with the backend: trigger → one outbox "request" per file
// (child ids "<id>#<k>") → start per child with the provider options →
// lastUpload status under the parent id until SUCCESS, FAILED or CANCELED.
package feature

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/internal/ditto"
)

// Definitions of the feature, as upstream.
var Definitions = []string{
	"com.bosch.iot.suite.manager.upload:AutoUploadable:1.0.0",
	"com.bosch.iot.suite.manager.upload:Uploadable:1.0.0",
}

// SupportedProviders is the info.supportedProviders property.
const SupportedProviders = "aws,azure,generic"

// Config is the feature's part of the service configuration.
type Config struct {
	FeatureID    string
	Type         string
	Context      string
	Policy       files.Policy
	Period       time.Duration
	Active       bool
	ActiveFrom   time.Time // zero: unset
	ActiveTill   time.Time // zero: unset
	Delete       bool
	SingleUpload bool
	StopTimeout  time.Duration
}

// Thing is the edge thing the feature belongs to.
type Thing struct {
	Namespace, Name, TenantID string
}

// ID is "<namespace>:<name>".
func (t Thing) ID() string { return t.Namespace + ":" + t.Name }

// Publisher sends one MQTT message with QoS 1. It is safe for concurrent
// use; an error means the message may not have reached the broker.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte) error
}

// Uploader moves one file to storage, reporting confirmed bytes.
type Uploader interface {
	Upload(ctx context.Context, f *files.File, progress providers.Progress) error
}

// Providers builds an Uploader from a start operation's options; an error
// is reported to the backend as a failed start.
type Providers func(o providers.Options) (Uploader, error)

// Feature is one AutoUploadable feature of one thing.
type Feature struct {
	cfg       Config
	thing     Thing
	pub       Publisher
	providers Providers
	limiter   *files.Limiter
	log       *slog.Logger
	status    *statusQueue
	now       func() time.Time
	clk       clock // nil: real time

	mu      sync.Mutex
	uploads map[string]*multiUpload // by parent correlation id
	order   []string                // parent ids, oldest first
	nextID  int64
	timer   *executor
	auto    autoUpload
	ctx     context.Context // the Run context; uploads derive from it
	wg      sync.WaitGroup  // upload and timer goroutines
}

type autoUpload struct {
	Active    bool       `json:"active"`
	StartTime *time.Time `json:"startTime"`
	EndTime   *time.Time `json:"endTime"`
}

// New returns a feature; Run publishes it and serves it.
func New(cfg Config, thing Thing, pub Publisher, p Providers, limiter *files.Limiter, log *slog.Logger) *Feature {
	if cfg.FeatureID == "" {
		cfg.FeatureID = "AutoUploadable"
	}
	f := &Feature{cfg: cfg, thing: thing, pub: pub, providers: p, limiter: limiter, log: log.With("thing", thing.ID()),
		uploads: map[string]*multiUpload{}, nextID: time.Now().Unix(), now: time.Now}
	f.status = newStatusQueue(100, f.log, f.publishStatus)
	return f
}

// Run publishes the feature, starts periodic uploads when configured and
// serves until ctx ends; then it waits up to StopTimeout for running
// uploads and cancels the rest. Handle may be called while Run runs.
func (f *Feature) Run(ctx context.Context) error {
	uctx, cancelUploads := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelUploads(providers.ErrInterrupted)
	f.mu.Lock()
	f.ctx = uctx
	f.mu.Unlock()
	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	qdone := make(chan struct{})
	go func() { defer close(qdone); f.status.run(qctx) }()
	defer func() { stopQueue(); <-qdone }()

	if err := f.publishFeature(ctx); err != nil {
		// The operations still work; the twin shows the feature once the
		// connector asks again (a new thing identity).
		f.log.Warn("feature not published", "err", err)
	}
	if f.cfg.Active || !f.cfg.ActiveFrom.IsZero() || !f.cfg.ActiveTill.IsZero() {
		var from, to *time.Time
		if !f.cfg.ActiveFrom.IsZero() {
			from = &f.cfg.ActiveFrom
		}
		if !f.cfg.ActiveTill.IsZero() {
			to = &f.cfg.ActiveTill
		}
		f.activate(from, to)
	}
	<-ctx.Done()
	f.deactivateTimer()
	f.drain(f.cfg.StopTimeout)
	cancelUploads(providers.ErrInterrupted)
	f.wg.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	f.status.flush(fctx)
	cancel()
	return nil
}

// drain waits up to d for uploading uploads, then cancels what is left.
func (f *Feature) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && f.uploading() {
		time.Sleep(min(200*time.Millisecond, time.Until(deadline)))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.uploads {
		u.cancelLocked(f, "", "upload canceled: service stopping", providers.ErrInterrupted)
	}
}

func (f *Feature) uploading() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.uploads {
		if u.status.State == Uploading {
			return true
		}
	}
	return false
}

func (f *Feature) featurePath() string { return "/features/" + f.cfg.FeatureID }

// twin sends a twin modify of path with value.
func (f *Feature) twin(ctx context.Context, path string, value any) error {
	v, err := json.Marshal(value)
	if err != nil {
		return err
	}
	env := &ditto.Envelope{
		Topic:   f.thing.Namespace + "/" + f.thing.Name + "/things/twin/commands/modify",
		Headers: ditto.Headers{"response-required": false, "content-type": ditto.ContentTypeJSON},
		Path:    path,
		Value:   v,
	}
	return f.send(ctx, "e", env)
}

func (f *Feature) send(ctx context.Context, topic string, env *ditto.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	return f.pub.Publish(ctx, topic, data)
}

func (f *Feature) publishFeature(ctx context.Context) error {
	f.mu.Lock()
	auto := f.auto
	f.mu.Unlock()
	props := map[string]any{
		"type":       f.cfg.Type,
		"context":    f.cfg.Context,
		"info":       map[string]string{"supportedProviders": SupportedProviders},
		"autoUpload": auto,
	}
	err := f.twin(ctx, f.featurePath(), map[string]any{"definition": Definitions, "properties": props})
	if err != nil {
		return fmt.Errorf("publish feature %s: %w", f.cfg.FeatureID, err)
	}
	return nil
}

func (f *Feature) publishStatus(ctx context.Context, s Status) error {
	return f.twin(ctx, f.featurePath()+"/properties/lastUpload", s)
}

func (f *Feature) publishAuto(auto autoUpload) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.twin(ctx, f.featurePath()+"/properties/autoUpload", auto); err != nil {
		f.log.Warn("publish autoUpload failed", "err", err)
	}
}

// opError is an operation failure with its Ditto error code and status.
type opError struct {
	status int
	code   string
	err    error
}

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func badRequest(err error) *opError {
	return &opError{400, "messages:parameter.invalid", err}
}

func failed(status int, err error) *opError {
	return &opError{status, "messages:execution.failed", err}
}

// Handle processes one message from command///req/#. Messages for another
// thing or feature are ignored.
func (f *Feature) Handle(ctx context.Context, topic string, payload []byte) {
	env, err := ditto.Parse(payload)
	if err != nil {
		f.log.Debug("ignoring message", "topic", topic, "err", err)
		return
	}
	tp, err := ditto.ParseTopic(env.Topic)
	if err != nil || tp.Namespace != f.thing.Namespace || tp.Name != f.thing.Name || tp.Group != "things" {
		return
	}
	prefix := f.featurePath() + "/inbox/messages/"
	op, ok := strings.CutPrefix(env.Path, prefix)
	if !ok {
		return
	}
	reqID := requestID(topic)
	var oerr *opError
	switch op {
	case "trigger":
		oerr = f.trigger(env.Value)
	case "start":
		oerr = f.start(env.Value)
	case "cancel":
		oerr = f.cancel(env.Value)
	case "activate":
		oerr = f.activateOp(env.Value)
	case "deactivate":
		f.deactivate()
	default:
		oerr = &opError{400, "messages:execution.failed", fmt.Errorf("Unsupported operation: %s", op)}
	}
	if oerr != nil {
		f.log.Info("operation refused", "op", op, "status", oerr.status, "err", oerr.err)
	}
	if !env.Headers.ResponseRequired() {
		return
	}
	f.reply(ctx, env, op, reqID, oerr)
}

// requestID is the segment after "req" in command///req/<id>/<subject>.
func requestID(topic string) string {
	seg := strings.Split(topic, "/")
	if len(seg) > 4 && seg[3] == "req" {
		return seg[4]
	}
	return ""
}

func (f *Feature) reply(ctx context.Context, req *ditto.Envelope, op, reqID string, oerr *opError) {
	env := &ditto.Envelope{
		Topic:   f.thing.Namespace + "/" + f.thing.Name + "/things/live/messages/" + op,
		Headers: ditto.Headers{"correlation-id": req.Headers.CorrelationID(), "response-required": false},
		Path:    f.featurePath() + "/outbox/messages/" + op,
		Status:  204,
	}
	if oerr != nil {
		env.Status = oerr.status
		env.Headers["content-type"] = ditto.ContentTypeJSON
		env.Value, _ = json.Marshal(map[string]any{"error": oerr.code, "status": oerr.status, "message": oerr.err.Error()})
	}
	topic := fmt.Sprintf("command///res/%s/%d", reqID, env.Status)
	if err := f.send(ctx, topic, env); err != nil {
		f.log.Warn("reply failed", "op", op, "err", err)
	}
}
