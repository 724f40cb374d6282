package connector

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// ErrProvisioning marks a provisioning file that cannot be used.
var ErrProvisioning = errors.New("provisioning error")

// provisioning is the Bosch IoT Suite provisioning file, only the fields
// upstream reads. Pointers tell absent keys (keep the old value) apart.
type provisioning struct {
	Hub struct {
		Credentials struct {
			DeviceID *string `json:"deviceId"`
			TenantID *string `json:"tenantId"`
			AuthID   *string `json:"authId"`
			Type     string  `json:"type"`
			Adapters []struct {
				Type string          `json:"type"`
				URI  string          `json:"uri"`
				Port json.RawMessage `json:"port"`
			} `json:"adapters"`
			Secrets []struct {
				Password       *string `json:"password"`
				PasswordBase64 *string `json:"passwordBase64"`
			} `json:"secrets"`
		} `json:"credentials"`
		Device struct {
			Authorities []string `json:"authorities"`
		} `json:"device"`
	} `json:"hub"`
	Things struct {
		Thing struct {
			PolicyID *string `json:"policyId"`
		} `json:"thing"`
	} `json:"things"`
}

// applyProvisioning merges the file at path into s. ok is false when the
// file does not exist. Missing keys keep their values, as upstream.
func applyProvisioning(path string, s *Settings) (ok bool, err error) {
	if path == "" {
		return false, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("%w: %v", ErrProvisioning, err)
	}
	var p provisioning
	if err := json.Unmarshal(data, &p); err != nil {
		return true, fmt.Errorf("%w: %s: %v", ErrProvisioning, path, err)
	}
	c := p.Hub.Credentials
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.DeviceID, c.DeviceID)
	set(&s.TenantID, c.TenantID)
	set(&s.AuthID, c.AuthID)
	set(&s.PolicyID, p.Things.Thing.PolicyID)
	for _, a := range c.Adapters {
		if a.Type != "mqtt" || a.URI == "" {
			continue
		}
		s.Address = a.URI
		if port := portString(a.Port); port != "" {
			s.Address = a.URI + ":" + port
		}
		break
	}
	for _, sec := range c.Secrets {
		if sec.PasswordBase64 != nil {
			pw, err := base64.StdEncoding.DecodeString(*sec.PasswordBase64)
			if err != nil {
				return true, fmt.Errorf("%w: passwordBase64: %v", ErrProvisioning, err)
			}
			s.Password = string(pw)
			break
		}
		if sec.Password != nil {
			s.Password = *sec.Password
			break
		}
	}
	return true, nil
}

func portString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String()
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if _, err := strconv.Atoi(s); err == nil {
			return s
		}
	}
	return ""
}
