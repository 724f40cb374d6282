package demo

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/images/vmtest"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// testWriter sends the demo's timeline to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The campaign path end to end, as make demo runs it: the firmware image
// (update-manager + fw-update-agent) boots in QEMU and connects to the
// cloud peer; a desired state sent from the cloud to the UpdateManager
// feature installs 2.0.0 into slot B, which boots on trial, passes the
// health check, is committed and reported COMPLETED, together with a
// package installed by script (software domain); a second one installs
// a release whose service fails, GRUB falls back to B, and the campaign is
// reported INCOMPLETE with the health check's reason. Each boot must reach
// its verdict within vmtest.BootTimeout.
func TestCampaignInVM(t *testing.T) {
	vmtest.Require(t)
	release := vmtest.HoldSlot()
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := Campaign(ctx, CampaignOptions{OutDir: t.TempDir(), Kanto: os.Getenv("KANTO_IMAGE_KANTO_BIN"),
		Out: testWriter{t}, BootTimeout: vmtest.BootTimeout, StepTimeout: 5 * vmtest.BootTimeout})
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", res.Console)
		}
		t.Fatal(err)
	}
	if got, want := len(res.Boots), 4; got != want {
		t.Errorf("boots = %d, want %d (initial, into B, bad A, back on B)", got, want)
	}
	if got := res.Good.Status; got != updateapi.StatusCompleted {
		t.Errorf("good campaign: %s, want COMPLETED", got)
	}
	installed := false
	for _, a := range res.Good.Actions {
		if a.Component.ID == "software:hello-app" && a.Status == updateapi.ActionUpdateSuccess {
			installed = true
		}
	}
	if !installed {
		t.Errorf("good campaign: no UPDATE_SUCCESS of software:hello-app in %+v", res.Good.Actions)
	}
	if got := res.Bad.Status; got != updateapi.StatusIncomplete {
		t.Errorf("bad campaign: %s, want INCOMPLETE", got)
	}
	if !strings.Contains(res.Bad.Message, "health check failed") {
		t.Errorf("bad campaign message %q does not name the failed health check", res.Bad.Message)
	}
}
