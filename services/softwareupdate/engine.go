package softwareupdate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// OpStatus is a hawkBit SoftwareUpdatable operation status.
type OpStatus string

// Operation statuses (SU:hawkbit/lib_status.go).
const (
	StatusStarted              OpStatus = "STARTED"
	StatusDownloading          OpStatus = "DOWNLOADING"
	StatusDownloadingWaiting   OpStatus = "DOWNLOADING_WAITING"
	StatusDownloaded           OpStatus = "DOWNLOADED"
	StatusDownloadedFileStored OpStatus = "DOWNLOADED_FILE_STORED"
	StatusInstalling           OpStatus = "INSTALLING"
	StatusInstallingWaiting    OpStatus = "INSTALLING_WAITING"
	StatusInstalled            OpStatus = "INSTALLED"
	StatusRemoving             OpStatus = "REMOVING"
	StatusRemovingWaiting      OpStatus = "REMOVING_WAITING"
	StatusRemoved              OpStatus = "REMOVED"
	StatusCancelingWaiting     OpStatus = "CANCELING_WAITING"
	StatusCancelRejected       OpStatus = "CANCEL_REJECTED"
	StatusFinishedCanceled     OpStatus = "FINISHED_CANCELED"
	StatusFinishedError        OpStatus = "FINISHED_ERROR"
	StatusFinishedSuccess      OpStatus = "FINISHED_SUCCESS"
	StatusFinishedWarning      OpStatus = "FINISHED_WARNING"
	StatusFinishedRejected     OpStatus = "FINISHED_REJECTED"
)

// Failed reports whether st is written to lastFailedOperation too.
func (st OpStatus) Failed() bool {
	return st == StatusFinishedError || st == StatusFinishedRejected || st == StatusCancelRejected
}

// Report is one status of an operation, becoming lastOperation.
type Report struct {
	CorrelationID string
	Status        OpStatus
	Module        *ModuleRef
	Software      []DependencyDescribe
	Progress      *int
	Message       string
	StatusCode    string
}

// ModuleRef names a module in a report; Path is set for stored downloads.
type ModuleRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Path    string `json:"path,omitempty"`
}

// MarshalJSON writes the lastOperation map as upstream does since commit
// aceebb9: keys correlationID (capital ID), status, softwareModule,
// Software (capital S), progress and statusCode only when set. The
// hawkBit/Vorto model spells correlationId; upstream code wins.
func (r Report) MarshalJSON() ([]byte, error) {
	m := map[string]any{"correlationID": r.CorrelationID, "status": r.Status, "message": r.Message}
	if r.Module != nil {
		m["softwareModule"] = r.Module
	}
	if r.Software != nil {
		m["Software"] = r.Software
	}
	if r.Progress != nil {
		m["progress"] = *r.Progress
	}
	if r.StatusCode != "" {
		m["statusCode"] = r.StatusCode
	}
	return json.Marshal(m)
}

// Operation kinds.
const (
	OpInstall  = "install"
	OpDownload = "download"
	OpRemove   = "remove"
)

// opFile is download/<n>/updatable.json.
type opFile struct {
	Operation       string               `json:"operation"`
	CorrelationID   string               `json:"correlationId"`
	SoftwareModules []moduleFile         `json:"softwareModules"`
	Software        []DependencyDescribe `json:"software,omitempty"`
}

type moduleFile struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Path      string            `json:"path,omitempty"`
	Artifacts []Artifact        `json:"artifacts"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Engine runs SoftwareUpdatable operations one at a time from a queue,
// persisting each under <storage>/download/<n>/ (see the package doc).
type Engine struct {
	Storage      string
	Downloader   *Downloader
	Runner       Runner
	ArtifactType string // archive or plain
	InstallDirs  []string
	Mode         string
	Log          *slog.Logger
	// Report receives every status; it is called from the engine goroutine.
	Report func(Report)
	// DepsChanged is called after installed dependencies changed.
	DepsChanged func()

	mu      sync.Mutex
	queue   []string // op dirs
	cancels map[string]context.CancelCauseFunc
	current string // correlation ID of the running op
	wake    chan struct{}
}

// ErrQueueFull: more than QueueSize operations are waiting.
var ErrQueueFull = errors.New("operation queue is full")

// errCanceled is the cause of a cancel requested by the backend.
var errCanceled = errors.New("operation canceled")

// QueueSize is upstream's queue capacity.
const QueueSize = 10

func (e *Engine) init() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wake == nil {
		e.wake = make(chan struct{}, 1)
		e.cancels = map[string]context.CancelCauseFunc{}
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
}

func (e *Engine) downloadRoot() string { return filepath.Join(e.Storage, "download") }

// Pending re-queues persisted operations in numeric order (done at start).
func (e *Engine) Pending() ([]string, error) {
	e.init()
	entries, err := os.ReadDir(e.downloadRoot())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, en := range entries {
		n, err := strconv.Atoi(en.Name())
		if err != nil || !en.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.downloadRoot(), en.Name(), "updatable.json")); err == nil {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	var dirs []string
	for _, n := range nums {
		dirs = append(dirs, filepath.Join(e.downloadRoot(), strconv.Itoa(n)))
	}
	return dirs, nil
}

// Submit persists an install or download and queues it.
func (e *Engine) Submit(kind string, a *UpdateAction) error {
	e.init()
	op := opFile{Operation: kind, CorrelationID: a.CorrelationID}
	for _, m := range a.SoftwareModules {
		mf := moduleFile{Name: m.SoftwareModule.Name, Version: m.SoftwareModule.Version, Metadata: m.Metadata}
		for _, s := range m.Artifacts {
			art, err := resolve(s, m.Metadata["copy-artifacts"], e.InstallDirs, e.Mode)
			if err != nil {
				e.failAll(a, err.Error())
				return err
			}
			mf.Artifacts = append(mf.Artifacts, art)
		}
		op.SoftwareModules = append(op.SoftwareModules, mf)
	}
	return e.enqueue(op, a)
}

// SubmitRemove persists a remove and queues it.
func (e *Engine) SubmitRemove(a *RemoveAction) error {
	e.init()
	return e.enqueue(opFile{Operation: OpRemove, CorrelationID: a.CorrelationID, Software: a.Software}, nil)
}

func (e *Engine) failAll(a *UpdateAction, msg string) {
	for _, m := range a.SoftwareModules {
		e.report(Report{CorrelationID: a.CorrelationID, Status: StatusFinishedError, Module: &ModuleRef{Name: m.SoftwareModule.Name, Version: m.SoftwareModule.Version}, Message: msg})
	}
}

func (e *Engine) enqueue(op opFile, a *UpdateAction) error {
	e.mu.Lock()
	full := len(e.queue) >= QueueSize
	e.mu.Unlock()
	if full {
		if a != nil {
			e.failAll(a, ErrQueueFull.Error())
		}
		return ErrQueueFull
	}
	dir, err := e.newOpDir()
	if err != nil {
		if a != nil {
			e.failAll(a, "Fail to save operation data.")
		}
		return err
	}
	b, _ := json.Marshal(op)
	if err := atomicWrite(filepath.Join(dir, "updatable.json"), b); err != nil {
		if a != nil {
			e.failAll(a, "Fail to save operation data.")
		}
		return err
	}
	e.push(dir)
	return nil
}

func (e *Engine) push(dir string) {
	e.mu.Lock()
	e.queue = append(e.queue, dir)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// newOpDir creates download/<max+1>.
func (e *Engine) newOpDir() (string, error) {
	if err := os.MkdirAll(e.downloadRoot(), 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(e.downloadRoot())
	if err != nil {
		return "", err
	}
	next := 0
	for _, en := range entries {
		if n, err := strconv.Atoi(en.Name()); err == nil && n >= next {
			next = n + 1
		}
	}
	dir := filepath.Join(e.downloadRoot(), strconv.Itoa(next))
	return dir, os.Mkdir(dir, 0o755)
}

// Cancel stops the running or a queued operation with correlation ID id.
// An unknown ID is answered with CANCEL_REJECTED.
func (e *Engine) Cancel(id string) {
	e.init()
	e.mu.Lock()
	if c := e.cancels[id]; c != nil && e.current == id {
		e.mu.Unlock()
		c(errCanceled)
		return
	}
	var found string
	for i, d := range e.queue {
		if op, err := readOp(d); err == nil && op.CorrelationID == id {
			found = d
			e.queue = slices.Delete(e.queue, i, i+1)
			break
		}
	}
	e.mu.Unlock()
	if found == "" {
		e.report(Report{CorrelationID: id, Status: StatusCancelRejected, Message: "no operation with correlationId " + id + " to cancel"})
		return
	}
	if op, err := readOp(found); err == nil {
		for _, m := range op.SoftwareModules {
			e.report(Report{CorrelationID: id, Status: StatusFinishedCanceled, Module: &ModuleRef{Name: m.Name, Version: m.Version}})
		}
	}
	_ = os.RemoveAll(found)
}

func readOp(dir string) (*opFile, error) {
	b, err := os.ReadFile(filepath.Join(dir, "updatable.json"))
	if err != nil {
		return nil, err
	}
	var op opFile
	if err := json.Unmarshal(b, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// Run executes queued operations until ctx ends, first those persisted by
// an earlier run.
func (e *Engine) Run(ctx context.Context) error {
	e.init()
	pending, err := e.Pending()
	if err != nil {
		return err
	}
	for _, d := range pending {
		e.push(d)
	}
	for {
		e.mu.Lock()
		var dir string
		if len(e.queue) > 0 {
			dir, e.queue = e.queue[0], e.queue[1:]
		}
		e.mu.Unlock()
		if dir == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-e.wake:
				continue
			}
		}
		e.execute(ctx, dir)
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (e *Engine) report(r Report) {
	if e.Report != nil {
		e.Report(r)
	}
}

func intp(v int) *int { return &v }

const finishedPrefix = "finished:"

func (e *Engine) execute(parent context.Context, dir string) {
	op, err := readOp(dir)
	if err != nil {
		e.Log.Error("dropping unreadable operation", "dir", dir, "err", err)
		_ = os.RemoveAll(dir)
		return
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	e.mu.Lock()
	e.current = op.CorrelationID
	e.cancels[op.CorrelationID] = cancel
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.cancels, op.CorrelationID)
		e.current = ""
		e.mu.Unlock()
	}()
	if op.Operation == OpRemove {
		e.remove(op)
		_ = os.RemoveAll(dir)
		return
	}
	lastOK := true
	for i := range op.SoftwareModules {
		m := &op.SoftwareModules[i]
		ref := &ModuleRef{Name: m.Name, Version: m.Version}
		rep := func(st OpStatus, progress *int, msg, code string) {
			e.report(Report{CorrelationID: op.CorrelationID, Status: st, Module: ref, Progress: progress, Message: msg, StatusCode: code})
		}
		err := e.module(ctx, op, m, filepath.Join(dir, strconv.Itoa(i)), rep)
		if parent.Err() != nil {
			return // shutdown: resumed at the next start
		}
		if errors.Is(context.Cause(ctx), errCanceled) {
			rep(StatusFinishedCanceled, nil, "", "")
			lastOK = false
			break
		}
		if err != nil {
			var se *ScriptError
			code := ""
			if errors.As(err, &se) {
				code = strconv.Itoa(se.Code)
			}
			rep(StatusFinishedError, nil, failureMessage(err), code)
			e.Log.Warn("operation failed", "correlationId", op.CorrelationID, "module", m.Name, "err", err)
			lastOK = false
			break
		}
	}
	if lastOK && op.Operation == OpDownload {
		for i := range op.SoftwareModules {
			m := op.SoftwareModules[i]
			path, err := e.store(filepath.Join(dir, strconv.Itoa(i)), m)
			if err != nil {
				e.Log.Error("store downloaded module", "err", err)
				continue
			}
			e.report(Report{CorrelationID: op.CorrelationID, Status: StatusDownloadedFileStored, Module: &ModuleRef{Name: m.Name, Version: m.Version, Path: path}})
		}
	}
	_ = os.RemoveAll(dir)
}

// failureMessage maps an error onto upstream's messages.
func failureMessage(err error) string {
	switch {
	case errors.Is(err, ErrScript):
		return ErrScript.Error()
	case errors.Is(err, ErrMultiple):
		return ErrMultiple.Error()
	case errors.Is(err, ErrExtract), errors.Is(err, ErrIllegalPath):
		return ErrExtract.Error() + ": " + err.Error()
	case errors.Is(err, ErrHashMismatch), errors.Is(err, ErrSizeExceeded), errors.Is(err, ErrDownload), errors.Is(err, ErrNoLink), errors.Is(err, ErrNoHash):
		return ErrDownload.Error() + ": " + err.Error()
	case errors.Is(err, errDeps):
		return err.Error()
	}
	return "internal runtime error: " + err.Error()
}

var errDeps = errors.New("fail to save installed dependencies")

func readLabel(mdir string) string {
	b, _ := os.ReadFile(filepath.Join(mdir, "internal-status"))
	return strings.TrimSpace(string(b))
}

func writeLabel(mdir, label string) error {
	return atomicWrite(filepath.Join(mdir, "internal-status"), []byte(label+"\n"))
}

// module runs one module from the label it reached (STARTED, DOWNLOADING,
// DOWNLOADED, INSTALLING, or finished).
func (e *Engine) module(ctx context.Context, op *opFile, m *moduleFile, mdir string, rep func(OpStatus, *int, string, string)) error {
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return err
	}
	label := readLabel(mdir)
	if label == finishedPrefix+m.Name+":"+m.Version {
		return nil
	}
	if label == "" {
		rep(StatusStarted, nil, "", "")
		if err := writeLabel(mdir, string(StatusStarted)); err != nil {
			return err
		}
		label = string(StatusStarted)
	}
	if label == string(StatusStarted) || label == string(StatusDownloading) {
		if err := writeLabel(mdir, string(StatusDownloading)); err != nil {
			return err
		}
		if op.Operation == OpInstall {
			e.fromArchive(m, mdir)
		}
		if err := e.downloadModule(ctx, m, mdir, func(p int) { rep(StatusDownloading, intp(p), "", "") }); err != nil {
			return err
		}
		rep(StatusDownloaded, intp(100), "", "")
		if err := writeLabel(mdir, string(StatusDownloaded)); err != nil {
			return err
		}
		label = string(StatusDownloaded)
	}
	if op.Operation == OpDownload {
		rep(StatusFinishedSuccess, nil, "", "")
		return writeLabel(mdir, finishedPrefix+m.Name+":"+m.Version)
	}
	if label == string(StatusDownloaded) || label == string(StatusInstalling) {
		if err := writeLabel(mdir, string(StatusInstalling)); err != nil {
			return err
		}
		rep(StatusInstalling, intp(0), "", "")
		st, err := e.installModule(ctx, m, mdir, func(s ScriptStatus) { rep(StatusInstalling, intp(s.Progress), s.Message, s.StatusCode) })
		if err != nil {
			return err
		}
		rep(StatusInstalled, intp(100), st.Message, st.StatusCode)
		if e.DepsChanged != nil {
			e.DepsChanged()
		}
		rep(StatusFinishedSuccess, intp(st.Progress), st.Message, st.StatusCode)
		return writeLabel(mdir, finishedPrefix+m.Name+":"+m.Version)
	}
	return fmt.Errorf("unknown internal status %q", label)
}

// downloadModule fetches every artifact, reporting the module-wide byte
// percentage on every integer change.
func (e *Engine) downloadModule(ctx context.Context, m *moduleFile, mdir string, progress func(int)) error {
	var total int64
	for _, a := range m.Artifacts {
		if !a.Local || a.Copy {
			total += a.Size
		}
	}
	last := -1
	var base int64
	emit := func(done int64) {
		p := 100
		if total > 0 {
			p = int(math.Round(float64(base+done) * 100 / float64(total)))
		}
		p = min(p, 100)
		if p != last {
			last = p
			progress(p)
		}
	}
	emit(0)
	for _, a := range m.Artifacts {
		if a.Local {
			if _, err := copyLocal(a, mdir, func(n int64) {
				if a.Copy {
					emit(n)
				}
			}); err != nil {
				return err
			}
			if a.Copy {
				base += a.Size
			}
			continue
		}
		if err := e.Downloader.Fetch(ctx, a, mdir, emit); err != nil {
			return err
		}
		base += a.Size
	}
	return nil
}

func (e *Engine) artifactType(m *moduleFile) string {
	if t := m.Metadata["artifact-type"]; t != "" {
		return strings.ToLower(t)
	}
	if e.ArtifactType == "" {
		return "archive"
	}
	return e.ArtifactType
}

func (e *Engine) installModule(ctx context.Context, m *moduleFile, mdir string, onStatus func(ScriptStatus)) (ScriptStatus, error) {
	cwd := mdir
	if e.artifactType(m) == "archive" {
		if len(m.Artifacts) != 1 {
			return ScriptStatus{}, ErrMultiple
		}
		if err := extractArchives(mdir); err != nil {
			return ScriptStatus{}, err
		}
	} else {
		for _, a := range m.Artifacts {
			if a.Local && !a.Copy && a.FileName == "install.sh" {
				cwd = filepath.Dir(a.Link)
			}
		}
	}
	st, err := e.Runner.Run(ctx, cwd, onStatus)
	if err != nil {
		return st, err
	}
	if err := collectDeps(e.Storage, cwd, m.Metadata["installed-deps"]); err != nil {
		return st, fmt.Errorf("%w: %w", errDeps, err)
	}
	return st, nil
}

// store moves a downloaded module to <storage>/modules/<n>.
func (e *Engine) store(mdir string, m moduleFile) (string, error) {
	root := filepath.Join(e.Storage, "modules")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	entries, _ := os.ReadDir(root)
	next := 0
	for _, en := range entries {
		if n, err := strconv.Atoi(en.Name()); err == nil && n >= next {
			next = n + 1
		}
	}
	dst := filepath.Join(root, strconv.Itoa(next))
	if err := os.Rename(mdir, dst); err != nil {
		return "", err
	}
	_ = os.Remove(filepath.Join(dst, "internal-status"))
	b, _ := json.Marshal(ModuleRef{Name: m.Name, Version: m.Version})
	if err := os.WriteFile(filepath.Join(dst, ".module.json"), b, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

// fromArchive moves the files of an earlier download of the same module
// into mdir, so the install needs no new download (upstream searchAndMove).
func (e *Engine) fromArchive(m *moduleFile, mdir string) {
	dirs, _ := filepath.Glob(filepath.Join(e.Storage, "modules", "*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ".module.json"))
		if err != nil {
			continue
		}
		var ref ModuleRef
		if json.Unmarshal(b, &ref) != nil || ref.Name != m.Name || ref.Version != m.Version {
			continue
		}
		for _, a := range m.Artifacts {
			_ = os.Rename(filepath.Join(d, a.FileName), filepath.Join(mdir, a.FileName))
		}
		_ = os.RemoveAll(d)
		return
	}
}

// remove deletes installed dependencies: REMOVING → REMOVED →
// FINISHED_SUCCESS, or FINISHED_ERROR when one is not installed.
func (e *Engine) remove(op *opFile) {
	rep := func(st OpStatus, msg string) {
		e.report(Report{CorrelationID: op.CorrelationID, Status: st, Software: op.Software, Message: msg})
	}
	rep(StatusRemoving, "")
	var missing []string
	for _, d := range op.Software {
		n, err := removeDeps(e.Storage, d)
		if err != nil {
			rep(StatusFinishedError, "fail to remove "+d.Name+": "+err.Error())
			return
		}
		if n == 0 {
			missing = append(missing, d.Name+":"+d.Version)
		}
	}
	if e.DepsChanged != nil {
		e.DepsChanged()
	}
	if len(missing) > 0 {
		rep(StatusFinishedError, "not installed: "+strings.Join(missing, ", "))
		return
	}
	rep(StatusRemoved, "")
	rep(StatusFinishedSuccess, "")
}
