package feature

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/internal/ditto"
)

// multiUpload is one trigger: a parent id and one child per file. Guarded
// by Feature.mu.
type multiUpload struct {
	id       string
	glob     string
	children []*child
	status   Status
	total    int64 // sum of sizes; -1 when a size could not be read
	ctx      context.Context
	cancel   context.CancelCauseFunc
}

type child struct {
	id      string
	path    string
	size    int64
	started bool
	done    bool
	bytes   int64
}

// newID returns upload-id-<n>, n starting at the unix time at start.
func (f *Feature) newIDLocked() string {
	id := "upload-id-" + strconv.FormatInt(f.nextID, 10)
	f.nextID++
	return id
}

func (f *Feature) trigger(raw json.RawMessage) *opError {
	req, err := ParseTrigger(raw)
	if err != nil {
		return badRequest(err)
	}
	return f.doTrigger(req)
}

// doTrigger selects the files and sends one request per file.
func (f *Feature) doTrigger(req TriggerRequest) *opError {
	force, _ := strconv.ParseBool(req.Options["force"])
	f.mu.Lock()
	if f.ctx == nil {
		f.mu.Unlock()
		return failed(500, errors.New("feature not running"))
	}
	if f.cfg.SingleUpload && !force {
		for _, u := range f.uploads {
			if u.status.State == Uploading {
				f.mu.Unlock()
				return failed(500, fmt.Errorf("cannot trigger a new upload: upload '%s' is in progress (singleUpload)", u.id))
			}
		}
	}
	f.mu.Unlock()

	glob, err := f.cfg.Policy.Resolve(req.Options["upload.files"])
	if err != nil {
		return failed(500, err)
	}
	paths, err := f.cfg.Policy.Select(glob)
	if err != nil {
		return failed(500, err)
	}

	f.mu.Lock()
	id := req.CorrelationID
	if id == "" {
		id = f.newIDLocked()
	}
	if _, dup := f.uploads[id]; dup {
		f.mu.Unlock()
		return failed(409, fmt.Errorf("upload with correlation ID '%s' already exists", id))
	}
	u := &multiUpload{id: id, glob: glob, status: Status{CorrelationID: id, State: Pending}}
	u.ctx, u.cancel = context.WithCancelCause(f.ctx)
	for i, p := range paths {
		c := &child{id: id + "#" + strconv.Itoa(i+1), path: p, size: -1}
		if fi, err := os.Stat(p); err == nil {
			c.size = fi.Size()
		}
		u.children = append(u.children, c)
	}
	u.total = sizes(u.children)
	if len(paths) > 0 {
		f.pruneLocked()
		f.uploads[id] = u
		f.order = append(f.order, id)
	} else {
		u.cancel(context.Canceled) // nothing to upload: nothing is remembered
	}
	f.mu.Unlock()

	passed := map[string]string{}
	for k, v := range req.Options {
		if rest, ok := strings.CutPrefix(k, "options."); ok {
			passed[rest] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range u.children {
		opts := map[string]string{}
		for k, v := range passed {
			opts[k] = v
		}
		opts["storage.providers"] = "aws, azure, generic"
		opts["file.path"] = c.path
		if err := f.request(ctx, c.id, opts); err != nil {
			f.log.Warn("request failed", "correlationId", c.id, "err", err)
		}
	}
	f.log.Info("upload triggered", "correlationId", id, "glob", glob, "files", len(paths))
	return nil
}

func sizes(cs []*child) int64 {
	var t int64
	for _, c := range cs {
		if c.size < 0 {
			return -1
		}
		t += c.size
	}
	return t
}

// request sends the outbox "request" message of one file.
func (f *Feature) request(ctx context.Context, id string, opts map[string]string) error {
	v, err := json.Marshal(map[string]any{"correlationId": id, "options": opts})
	if err != nil {
		return err
	}
	env := &ditto.Envelope{
		Topic: f.thing.Namespace + "/" + f.thing.Name + "/things/live/messages/request",
		Headers: ditto.Headers{"response-required": false, "content-type": ditto.ContentTypeJSON,
			"reply-to": "command/" + f.thing.TenantID, "correlation-id": id},
		Path:  f.featurePath() + "/outbox/messages/request",
		Value: v,
	}
	return f.send(ctx, "e", env)
}

// lookupLocked finds the upload of a parent or child id.
func (f *Feature) lookupLocked(id string) (*multiUpload, *child) {
	if u := f.uploads[id]; u != nil {
		return u, nil
	}
	parent, _, ok := strings.Cut(id, "#")
	if !ok {
		return nil, nil
	}
	u := f.uploads[parent]
	if u == nil {
		return nil, nil
	}
	for _, c := range u.children {
		if c.id == id {
			return u, c
		}
	}
	return nil, nil
}

func (f *Feature) start(raw json.RawMessage) *opError {
	req, err := ParseStart(raw)
	if err != nil {
		return badRequest(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u, c := f.lookupLocked(req.CorrelationID)
	switch {
	case u == nil:
		return &opError{404, "messages:parameter.invalid", fmt.Errorf("upload with correlation ID '%s' not found", req.CorrelationID)}
	case c == nil:
		return failed(500, fmt.Errorf("upload '%s' cannot be started - start the individual uploads", req.CorrelationID))
	case c.started:
		return failed(500, fmt.Errorf("upload '%s' already started", c.id))
	case u.status.State.terminal():
		return failed(500, fmt.Errorf("upload '%s' already finished with %s", u.id, u.status.State))
	}
	up, err := f.providers(providers.Options(req.Options))
	if err != nil {
		return failed(500, err)
	}
	c.started = true
	for k, v := range req.Options {
		if rest, ok := strings.CutPrefix(k, "info."); ok && rest != "" {
			if u.status.Info == nil {
				u.status.Info = map[string]string{}
			}
			u.status.Info[rest] = v
		}
	}
	if u.status.State == Pending {
		u.status.State = Uploading
		u.status.StartTime = f.now().UTC()
		u.status.Progress = 0
		if u.total >= 0 {
			u.status.Total = u.total
		}
		f.status.add(u.status)
	}
	f.wg.Add(1)
	// Owned by the feature; ends when the upload ends or u.ctx is
	// cancelled (cancel operation, failure of a sibling, shutdown).
	go func() {
		defer f.wg.Done()
		f.upload(u, c, up)
	}()
	return nil
}

func (f *Feature) upload(u *multiUpload, c *child, up Uploader) {
	log := f.log.With("correlationId", c.id, "file", c.path)
	err := f.uploadFile(u, c, up)
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.status.State.terminal() {
		return // canceled, or a sibling failed
	}
	if err != nil {
		log.Warn("upload failed", "err", err)
		u.status.State = Failed
		u.status.EndTime = f.now().UTC()
		u.status.Message = err.Error()
		u.cancel(context.Canceled)
		f.status.add(u.status)
		return
	}
	log.Info("uploaded")
	c.done = true
	c.bytes = c.size
	for _, o := range u.children {
		if !o.done {
			f.progressLocked(u)
			return
		}
	}
	u.status.State = Success
	u.status.Progress = 100
	u.status.Bytes = u.status.Total
	u.status.EndTime = f.now().UTC()
	u.cancel(context.Canceled)
	f.status.add(u.status)
}

func (f *Feature) uploadFile(u *multiUpload, c *child, up Uploader) error {
	file, err := files.Open(f.cfg.Policy, c.path, u.glob, f.limiter)
	if err != nil {
		return err
	}
	defer file.Close()
	if c.size != file.Size() {
		f.mu.Lock()
		c.size = file.Size()
		u.total = sizes(u.children)
		f.mu.Unlock()
	}
	err = up.Upload(u.ctx, file, func(n int64) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if n > c.bytes {
			c.bytes = n
			f.progressLocked(u)
		}
	})
	if err != nil {
		if u.ctx.Err() != nil {
			return fmt.Errorf("upload canceled: %w", context.Canceled)
		}
		return err
	}
	if f.cfg.Delete {
		if err := file.Remove(); err != nil {
			f.log.Warn("delete after upload failed", "file", c.path, "err", err)
		}
	}
	return nil
}

// progressLocked reports progress by bytes when every size is known, else
// by finished files, and only when the percentage changes.
func (f *Feature) progressLocked(u *multiUpload) {
	if u.status.State != Uploading {
		return
	}
	var pct int
	if u.total > 0 {
		var done int64
		for _, c := range u.children {
			done += c.bytes
		}
		pct = int(done * 100 / u.total)
		u.status.Bytes = done
	} else {
		n := 0
		for _, c := range u.children {
			if c.done {
				n++
			}
		}
		pct = n * 100 / len(u.children)
	}
	pct = min(pct, 99) // 100 is SUCCESS's
	if pct != u.status.Progress {
		u.status.Progress = pct
		f.status.add(u.status)
	}
}

func (f *Feature) cancel(raw json.RawMessage) *opError {
	req, err := ParseCancel(raw)
	if err != nil {
		return badRequest(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u, _ := f.lookupLocked(req.CorrelationID)
	if u == nil {
		return &opError{404, "messages:parameter.invalid", fmt.Errorf("upload with correlation ID '%s' not found", req.CorrelationID)}
	}
	if u.status.State.terminal() {
		return failed(409, fmt.Errorf("upload '%s' already finished with %s", u.id, u.status.State))
	}
	u.cancelLocked(f, req.StatusCode, req.Message, context.Canceled)
	return nil
}

// cancelLocked marks u CANCELED and stops its children with cause:
// context.Canceled discards what reached the server, providers.ErrInterrupted
// keeps it for a later upload of the same file to resume.
func (u *multiUpload) cancelLocked(f *Feature, code, msg string, cause error) {
	if u.status.State.terminal() {
		return
	}
	u.status.State = Canceled
	u.status.StatusCode = code
	u.status.Message = msg
	u.status.EndTime = f.now().UTC()
	u.cancel(cause)
	f.status.add(u.status)
}

// maxUploads bounds the uploads remembered: beyond it the oldest that are
// not uploading (finished, or triggered but never started) are forgotten,
// so periodic triggers the backend never starts cannot grow memory.
const maxUploads = 200

func (f *Feature) pruneLocked() {
	for i := 0; len(f.uploads) >= maxUploads && i < len(f.order); {
		id := f.order[i]
		u := f.uploads[id]
		if u != nil && u.status.State == Uploading {
			i++
			continue
		}
		if u != nil {
			u.cancel(context.Canceled)
			delete(f.uploads, id)
		}
		f.order = append(f.order[:i], f.order[i+1:]...)
	}
}
