package twins_test

import (
	"crypto/tls"
	"testing"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

// local-digital-twins reaches a hub that requires client certificates with
// its private key in a (software) TPM, and twin changes flow to the cloud.
func TestTPMKey(t *testing.T) {
	w := newWorld(t)
	tpm := tpmkeytest.Start(t)
	priv, pub := tpm.CreateKey(t, "device", "rsa2048")
	ca := tpmkeytest.NewCA(t)
	key, err := tpmkey.Open(tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: pub})
	if err != nil {
		t.Fatal(err)
	}
	certFile, leaf := ca.Client(t, deviceID, key.Public())
	key.Close()

	// The cloud, again: a hub behind an adapter that wants the certificate.
	_, _, server := ca.Server(t)
	hub := mosquittotest.Start(t, mosquittotest.Options{SysLog: true, Extra: "max_queued_messages 100000\n"})
	w.adapter, err = cloudpeer.NewAdapter(hub.Addr(), &tls.Config{Certificates: []tls.Certificate{server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool, MinVersion: tls.VersionTLS12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.adapter.Close() })
	w.adapter.AddCertificate(leaf.Subject.String())
	if w.nb, err = cloudpeer.NewNorthbound(ctxT(t), hub.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nb.Close)

	delete(w.settings, "authId")
	delete(w.settings, "password")
	w.settings["address"] = "mqtts://" + w.adapter.Addr()
	w.settings["caCert"] = ca.File
	w.settings["cert"] = certFile
	tpm.Settings(w.settings, priv, pub)
	w.start()
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.publish("e", cmd(deviceID, "modify", "/features/meter", map[string]any{"properties": map[string]any{"x": 1}}, "tpm1"))
	w.hubSaw("the forwarded modify", func(e envelope) bool {
		return e.Path == "/features/meter" && e.Headers["correlation-id"] == "tpm1"
	})
}
