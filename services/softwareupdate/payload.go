package softwareupdate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrInvalidPayload marks an operation payload that cannot be executed; the
// reply is 400 messages:parameter.invalid.
var ErrInvalidPayload = errors.New("invalid payload")

// MaxPayloadSize bounds an operation payload.
const MaxPayloadSize = 1 << 20

// UpdateAction is the payload of install and download
// (SU:hawkbit/lib_*.go SoftwareUpdateAction).
type UpdateAction struct {
	CorrelationID   string            `json:"correlationId"`
	Weight          int               `json:"weight,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	Forced          bool              `json:"forced,omitempty"`
	SoftwareModules []ModuleAction    `json:"softwareModules"`
}

// ModuleAction is one software module to download or install. The per
// module metadata key is "metaData" in upstream's code and "metadata" in its
// docs; Go's case-insensitive decoding accepts both, as upstream.
type ModuleAction struct {
	SoftwareModule ModuleID          `json:"softwareModule"`
	Metadata       map[string]string `json:"metaData,omitempty"`
	Artifacts      []ArtifactSpec    `json:"artifacts"`
}

// ModuleID names a software module.
type ModuleID struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ArtifactSpec is an artifact as the backend sends it.
type ArtifactSpec struct {
	FileName  string                  `json:"filename"`
	Size      int64                   `json:"size"`
	Download  map[string]DownloadLink `json:"download"`
	Checksums map[string]string       `json:"checksums"`
}

// DownloadLink is one protocol's link.
type DownloadLink struct {
	URL    string `json:"url"`
	MD5URL string `json:"md5url,omitempty"`
}

// RemoveAction is the payload of remove.
type RemoveAction struct {
	CorrelationID string               `json:"correlationId"`
	Software      []DependencyDescribe `json:"software"`
	Weight        int                  `json:"weight,omitempty"`
	Metadata      map[string]string    `json:"metadata,omitempty"`
	Forced        bool                 `json:"forced,omitempty"`
}

// CancelAction is the payload of cancel: the correlation ID of the
// operation to stop (and optionally one module, ignored: the operation is
// cancelled as a whole).
type CancelAction struct {
	CorrelationID  string    `json:"correlationId"`
	SoftwareModule *ModuleID `json:"softwareModule,omitempty"`
}

// DependencyDescribe is an installed dependency.
type DependencyDescribe struct {
	Group   string `json:"group"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Type    string `json:"type,omitempty"`
}

func decodeOne(data []byte, dst any) error {
	if len(data) > MaxPayloadSize {
		return fmt.Errorf("payload of %d bytes, limit %d: %w", len(data), MaxPayloadSize, ErrInvalidPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalidPayload)
	}
	if dec.More() {
		return fmt.Errorf("trailing data: %w", ErrInvalidPayload)
	}
	return nil
}

// ParseUpdateAction decodes and checks an install/download payload.
func ParseUpdateAction(data []byte) (*UpdateAction, error) {
	var a UpdateAction
	if err := decodeOne(data, &a); err != nil {
		return nil, err
	}
	if a.CorrelationID == "" {
		return nil, fmt.Errorf("correlationId is missing: %w", ErrInvalidPayload)
	}
	if len(a.SoftwareModules) == 0 {
		return nil, fmt.Errorf("softwareModules is empty: %w", ErrInvalidPayload)
	}
	for i, m := range a.SoftwareModules {
		if m.SoftwareModule.Name == "" {
			return nil, fmt.Errorf("softwareModules[%d] has no name: %w", i, ErrInvalidPayload)
		}
		for j, art := range m.Artifacts {
			if err := checkFileName(art.FileName); err != nil {
				return nil, fmt.Errorf("softwareModules[%d].artifacts[%d]: %w", i, j, err)
			}
			if art.Size < 0 {
				return nil, fmt.Errorf("softwareModules[%d].artifacts[%d]: negative size: %w", i, j, ErrInvalidPayload)
			}
		}
	}
	return &a, nil
}

// ParseRemoveAction decodes a remove payload.
func ParseRemoveAction(data []byte) (*RemoveAction, error) {
	var a RemoveAction
	if err := decodeOne(data, &a); err != nil {
		return nil, err
	}
	if a.CorrelationID == "" {
		return nil, fmt.Errorf("correlationId is missing: %w", ErrInvalidPayload)
	}
	if len(a.Software) == 0 {
		return nil, fmt.Errorf("software is empty: %w", ErrInvalidPayload)
	}
	return &a, nil
}

// ParseCancelAction decodes a cancel payload.
func ParseCancelAction(data []byte) (*CancelAction, error) {
	var a CancelAction
	if err := decodeOne(data, &a); err != nil {
		return nil, err
	}
	if a.CorrelationID == "" {
		return nil, fmt.Errorf("correlationId is missing: %w", ErrInvalidPayload)
	}
	return &a, nil
}

// checkFileName refuses names that would leave the module directory.
func checkFileName(n string) error {
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) || strings.HasPrefix(n, TempPrefix) {
		return fmt.Errorf("illegal file name %q: %w", n, ErrInvalidPayload)
	}
	return nil
}

// Local artifact modes (config key mode).
const (
	ModeStrict = "strict"
	ModeScoped = "scoped"
	ModeLax    = "lax"
)

// resolve picks the link and hash of spec (SU:internal/storage/utils.go).
func resolve(spec ArtifactSpec, copyList string, installDirs []string, mode string) (Artifact, error) {
	a := Artifact{FileName: spec.FileName, Size: spec.Size}
	for _, t := range []string{"SHA256", "SHA1", "MD5"} {
		for k, v := range spec.Checksums {
			if strings.EqualFold(k, t) && v != "" {
				a.HashType, a.HashValue = t, v
				break
			}
		}
		if a.HashType != "" {
			break
		}
	}
	if a.HashType == "" {
		return a, fmt.Errorf("%s: %w", spec.FileName, ErrNoHash)
	}
	link := func(proto string) string {
		for k, v := range spec.Download {
			if strings.EqualFold(k, proto) {
				return v.URL
			}
		}
		return ""
	}
	switch {
	case link("HTTPS") != "":
		a.Link = link("HTTPS")
	case link("HTTP") != "":
		a.Link = link("HTTP")
	case link("FILE") != "":
		p, err := localPath(link("FILE"), installDirs, mode)
		if err != nil {
			return a, err
		}
		a.Link, a.Local = p, true
		a.Copy = copyList == "*" || containsName(copyList, spec.FileName)
	default:
		return a, fmt.Errorf("%s: %w", spec.FileName, ErrNoLink)
	}
	return a, nil
}

func containsName(list, name string) bool {
	for _, n := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == os.PathListSeparator }) {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// localPath resolves a FILE link against installDirs under mode.
func localPath(link string, dirs []string, mode string) (string, error) {
	mode = strings.ToLower(mode)
	if mode != ModeLax && len(dirs) == 0 {
		return "", fmt.Errorf("local artifact %s: no installDirs configured for mode %s: %w", link, mode, ErrInvalidPayload)
	}
	candidates := []string{link}
	if !filepath.IsAbs(link) {
		candidates = nil
		for _, d := range dirs {
			candidates = append(candidates, filepath.Join(d, link))
		}
	}
	for _, c := range candidates {
		c = filepath.Clean(c)
		if _, err := os.Stat(c); err != nil {
			continue
		}
		if mode == ModeLax {
			return c, nil
		}
		for _, d := range dirs {
			d = filepath.Clean(d)
			switch mode {
			case ModeStrict:
				if filepath.Dir(c) == d {
					return c, nil
				}
			case ModeScoped:
				if rel, err := filepath.Rel(d, c); err == nil && !strings.HasPrefix(rel, "..") {
					return c, nil
				}
			}
		}
	}
	return "", fmt.Errorf("local artifact %s is not allowed or missing (mode %s): %w", link, mode, ErrInvalidPayload)
}
