package uplink

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
)

// ErrProvisioning marks a provisioning file that cannot be used.
var ErrProvisioning = errors.New("provisioning error")

// Provisioning is what upstream reads of the Bosch IoT Suite provisioning
// file. A nil field was absent: the setting keeps its value.
type Provisioning struct {
	DeviceID, TenantID, AuthID, PolicyID *string
	// Address is the mqtt adapter's uri, with ":<port>" when a port is given.
	Address *string
	// Password is the first secret's passwordBase64 (decoded) or password.
	Password    *string
	Authorities []string
}

// AutoProvisioning reports the auto-provisioning-enabled authority.
func (p *Provisioning) AutoProvisioning() bool {
	return slices.Contains(p.Authorities, "auto-provisioning-enabled")
}

// ReadProvisioning reads the file at path. found is false (and p nil) when
// path is empty or the file does not exist.
func ReadProvisioning(path string) (p *Provisioning, found bool, err error) {
	if path == "" {
		return nil, false, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrProvisioning, err)
	}
	var f struct {
		Hub struct {
			Credentials struct {
				DeviceID *string `json:"deviceId"`
				TenantID *string `json:"tenantId"`
				AuthID   *string `json:"authId"`
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
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, true, fmt.Errorf("%w: %s: %v", ErrProvisioning, path, err)
	}
	c := f.Hub.Credentials
	p = &Provisioning{DeviceID: c.DeviceID, TenantID: c.TenantID, AuthID: c.AuthID,
		PolicyID: f.Things.Thing.PolicyID, Authorities: f.Hub.Device.Authorities}
	for _, a := range c.Adapters {
		if a.Type != "mqtt" || a.URI == "" {
			continue
		}
		addr := a.URI
		if port := portString(a.Port); port != "" {
			addr += ":" + port
		}
		p.Address = &addr
		break
	}
	for _, sec := range c.Secrets {
		if sec.PasswordBase64 != nil {
			pw, err := base64.StdEncoding.DecodeString(*sec.PasswordBase64)
			if err != nil {
				return nil, true, fmt.Errorf("%w: passwordBase64: %v", ErrProvisioning, err)
			}
			s := string(pw)
			p.Password = &s
			break
		}
		if sec.Password != nil {
			p.Password = sec.Password
			break
		}
	}
	return p, true, nil
}

// portString accepts a port as a JSON number or a numeric string.
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

// Merge sets *dst to *v when v is present.
func Merge(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}
