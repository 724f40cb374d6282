package connector_test

import (
	"context"
	"encoding/base64"
	"os/exec"
	"testing"
)

type ctxType = context.Context

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func runKanto(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(kanto(t), args...).CombinedOutput()
	return string(out), err
}
