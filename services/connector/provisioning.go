package connector

import "github.com/kantofw/kanto/services/internal/uplink"

// ErrProvisioning marks a provisioning file that cannot be used.
var ErrProvisioning = uplink.ErrProvisioning

// applyProvisioning merges the file at path into s. ok is false when the
// file does not exist. Missing keys keep their values, as upstream.
func applyProvisioning(path string, s *Settings) (ok bool, err error) {
	p, found, err := uplink.ReadProvisioning(path)
	if err != nil || !found {
		return found, err
	}
	uplink.Merge(&s.DeviceID, p.DeviceID)
	uplink.Merge(&s.TenantID, p.TenantID)
	uplink.Merge(&s.AuthID, p.AuthID)
	uplink.Merge(&s.PolicyID, p.PolicyID)
	uplink.Merge(&s.Address, p.Address)
	uplink.Merge(&s.Password, p.Password)
	return true, nil
}
