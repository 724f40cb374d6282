package cloudpeer

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// connectPacket builds a CONNECT packet for the corpus.
func connectPacket(clientID, user, pass string, will bool) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var flags byte = 0x02
	var payload []byte
	payload = append(payload, str(clientID)...)
	if will {
		flags |= 0x04
		payload = append(payload, str("will/t")...)
		payload = append(payload, str("bye")...)
	}
	if user != "" {
		flags |= 0x80
		payload = append(payload, str(user)...)
	}
	if pass != "" {
		flags |= 0x40
		payload = append(payload, str(pass)...)
	}
	body := append(append(str("MQTT"), 4, flags, 0, 20), payload...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestReadConnect(t *testing.T) {
	pkt := connectPacket("gw", "auth@tenant", "secret", true)
	c, err := ReadConnect(bufio.NewReader(bytes.NewReader(pkt)))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "gw" || c.Username != "auth@tenant" || string(c.Password) != "secret" || !c.CleanStart || c.KeepAlive != 20 {
		t.Errorf("parsed %+v", c)
	}
	if !bytes.Equal(c.Raw, pkt) {
		t.Error("raw packet not kept byte for byte")
	}
	for name, bad := range map[string][]byte{
		"publish first": {0x30, 0x00},
		"truncated":     pkt[:len(pkt)-3],
		"long length":   {0x10, 0xff, 0xff, 0xff, 0xff, 0x7f},
	} {
		if _, err := ReadConnect(bufio.NewReader(bytes.NewReader(bad))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzReadConnect(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/connect-*.bin")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Add(connectPacket("x", "", "", false))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadConnect(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(data, c.Raw) {
			t.Fatalf("raw %x is not a prefix of the input", c.Raw)
		}
	})
}
