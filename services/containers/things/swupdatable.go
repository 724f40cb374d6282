package things

import (
	"context"
	"crypto/md5"  //nolint:gosec // hawkBit artifacts may carry only an MD5 checksum
	"crypto/sha1" //nolint:gosec // idem, SHA1
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/containers/model"
)

// SoftwareUpdatableDefinition is hawkBit's feature definition.
const SoftwareUpdatableDefinition = "org.eclipse.hawkbit.swupdatable:SoftwareUpdatable:2.0.0"

const moduleType = "oci:container"

type dependency struct {
	Group   string `json:"group"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Type    string `json:"type,omitempty"`
}

// dependencyOf maps a container as upstream: group = image ref before its
// first ':', name = container id, version = the rest.
func dependencyOf(c *model.Container) (key string, d dependency) {
	group, version, _ := strings.Cut(c.Image.Name, ":")
	d = dependency{Group: group, Name: c.ID, Version: version, Type: moduleType}
	key = strings.ReplaceAll(group+"."+c.ID+":"+version, "/", "%2F")
	return key, d
}

type operationStatus struct {
	CorrelationID string       `json:"correlationId"`
	Status        string       `json:"status"`
	Software      []dependency `json:"softwareModule,omitempty"`
	Message       string       `json:"message,omitempty"`
}

type artifact struct {
	Filename string `json:"filename"`
	Download map[string]struct {
		URL string `json:"url"`
	} `json:"download"`
	Checksums map[string]string `json:"checksums"`
}

type installAction struct {
	CorrelationID   string `json:"correlationId"`
	SoftwareModules []struct {
		SoftwareModule struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"softwareModule"`
		Artifacts []artifact `json:"artifacts"`
	} `json:"softwareModules"`
}

type removeAction struct {
	CorrelationID string       `json:"correlationId"`
	Software      []dependency `json:"software"`
	Forced        bool         `json:"forced"`
}

var errRejected = errors.New("rejected")

func (t *Things) softwareFeature() feature {
	deps := map[string]dependency{}
	for _, c := range t.m.List() {
		k, d := dependencyOf(c)
		deps[k] = d
	}
	return feature{Definition: []string{SoftwareUpdatableDefinition}, Properties: map[string]any{
		"status": map[string]any{"softwareModuleType": moduleType, "installedDependencies": deps},
	}}
}

func (t *Things) reportOperation(ctx context.Context, op operationStatus) {
	path := "/features/SoftwareUpdatable/properties/status/lastOperation"
	if err := t.modify(ctx, path, op); err != nil {
		t.log.Warn("report operation", "err", err)
	}
	if strings.HasPrefix(op.Status, "FINISHED_") && op.Status != "FINISHED_SUCCESS" {
		_ = t.modify(ctx, "/features/SoftwareUpdatable/properties/status/lastFailedOperation", op)
	}
}

// softwareUpdatable handles install, remove and the no-op operations. The
// work runs in the background; the operation returns at once (204).
func (t *Things) softwareUpdatable(ctx context.Context, op string, raw json.RawMessage) error {
	bg := context.WithoutCancel(ctx)
	switch op {
	case "install":
		var a installAction
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("%v: %w", err, errBadParam)
		}
		// Owned by the operation: ends when the install is reported.
		go t.install(bg, a)
		return nil
	case "remove":
		var a removeAction
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("%v: %w", err, errBadParam)
		}
		// Owned by the operation: ends when the removal is reported.
		go t.remove(bg, a)
		return nil
	case "download", "cancel", "cancelRemove":
		return nil
	}
	return fmt.Errorf("unknown operation %s: %w", op, errNotFound)
}

func (t *Things) install(ctx context.Context, a installAction) {
	report := func(status, msg string) {
		t.reportOperation(ctx, operationStatus{CorrelationID: a.CorrelationID, Status: status, Message: msg})
	}
	report("STARTED", "")
	report("DOWNLOADING", "")
	var ctrs []*model.Container
	for _, sm := range a.SoftwareModules {
		for _, art := range sm.Artifacts {
			c, err := t.fetchDescriptor(ctx, art)
			if err != nil {
				status := "FINISHED_ERROR"
				if errors.Is(err, errRejected) {
					status = "FINISHED_REJECTED"
				}
				report(status, err.Error())
				return
			}
			ctrs = append(ctrs, c)
		}
	}
	report("DOWNLOADED", "")
	report("INSTALLING", "")
	var ids []string
	for _, c := range ctrs {
		created, err := t.m.Create(ctx, c, nil)
		if err != nil {
			report("FINISHED_ERROR", err.Error())
			return
		}
		ids = append(ids, created.ID)
	}
	report("INSTALLED", "")
	for _, id := range ids {
		if err := t.m.Start(ctx, id); err != nil {
			report("FINISHED_ERROR", err.Error())
			return
		}
	}
	report("FINISHED_SUCCESS", "")
}

// fetchDescriptor downloads a container descriptor (internal JSON format)
// and checks its checksum.
func (t *Things) fetchDescriptor(ctx context.Context, art artifact) (*model.Container, error) {
	url := ""
	for _, k := range []string{"HTTPS", "HTTP"} {
		if d, ok := art.Download[k]; ok && d.URL != "" {
			url = d.URL
			break
		}
	}
	if url == "" {
		return nil, fmt.Errorf("artifact %s has no download URL", art.Filename)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", art.Filename, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", art.Filename, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", art.Filename, err)
	}
	for alg, want := range art.Checksums {
		var h hash.Hash
		switch strings.ToUpper(alg) {
		case "MD5":
			h = md5.New() //nolint:gosec
		case "SHA1":
			h = sha1.New() //nolint:gosec
		case "SHA256":
			h = sha256.New()
		default:
			continue
		}
		h.Write(data)
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
			return nil, fmt.Errorf("%s checksum of %s is %s, want %s: %w", alg, art.Filename, got, want, errRejected)
		}
	}
	c, err := model.Decode(art.Filename, data)
	if err != nil {
		return nil, err
	}
	model.FillDefaults(c)
	if err := model.Validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

func (t *Things) remove(ctx context.Context, a removeAction) {
	report := func(status, msg string, sw []dependency) {
		t.reportOperation(ctx, operationStatus{CorrelationID: a.CorrelationID, Status: status, Message: msg, Software: sw})
	}
	var failed error
	for _, d := range a.Software {
		if failed != nil && !a.Forced {
			report("FINISHED_REJECTED", "rejected after an earlier error", []dependency{d})
			continue
		}
		report("REMOVING", "", []dependency{d})
		if err := t.m.Remove(ctx, d.Name, true, nil); err != nil {
			failed = err
			report("FINISHED_ERROR", err.Error(), []dependency{d})
			continue
		}
		report("REMOVED", "", []dependency{d})
	}
	if failed == nil {
		report("FINISHED_SUCCESS", "", nil)
	}
}
