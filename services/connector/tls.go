package connector

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// resolvePattern fills {{subject-dn}} and {{subject-cn}} from cert.
func resolvePattern(pattern string, cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: deviceIdPattern needs a client certificate", uplink.ErrTLS)
	}
	id := strings.ReplaceAll(pattern, "{{subject-dn}}", cert.Subject.String())
	id = strings.ReplaceAll(id, "{{subject-cn}}", cert.Subject.CommonName)
	if _, _, err := ditto.SplitID(id); err != nil {
		return "", fmt.Errorf("deviceIdPattern %q gives %q: %w", pattern, id, err)
	}
	return id, nil
}
