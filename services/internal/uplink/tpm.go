package uplink

import (
	"fmt"
	"log/slog"

	"github.com/kantofw/kanto/services/internal/tpmkey"
)

// Open loads the TPM key these settings name and checks it against the
// client certificate in certFile, so that a wrong device, handle, blob or
// certificate shows when the service starts, not at its first handshake.
// It returns nil, nil when tpmDevice is not set. The caller closes the key
// when the service ends; errors wrap ErrTLS and a tpmkey category
// (tpmkey.ErrDevice, ErrBlob, ErrParent, ErrUnsupported, ErrMismatch).
// log, if set, notes where the key lives.
func (t *TPMSettings) Open(certFile string, log *slog.Logger) (*tpmkey.Key, error) {
	if t.TPMDevice == "" {
		return nil, nil
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if certFile == "" {
		return nil, fmt.Errorf("%w: tpmDevice is set: set cert to the client certificate of the TPM key: %w", ErrTLS, ErrConfig)
	}
	key, err := tpmkey.Open(tpmkey.Options{
		Device: t.TPMDevice, Parent: uint32(t.TPMHandle), Private: t.TPMKey, Public: t.TPMKeyPub,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: TPM key: %w", ErrTLS, err)
	}
	if _, _, err := HubTLS("", certFile, "", key, nil); err != nil {
		key.Close()
		return nil, err
	}
	if log != nil {
		log.Info("client key is in the TPM", "tpmDevice", t.TPMDevice, "tpmHandle", fmt.Sprintf("%#x", t.TPMHandle))
	}
	return key, nil
}
