package fileupload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slowEnv caps uploads at 1 MiB/s so a 3 MiB file is in flight long
// enough to act on it.
func slowEnv(t *testing.T) (*env, *store, string) {
	st, hs := newStore(t)
	e := newEnv(t, func(c *Config) { c.UploadRate = 1 << 20 })
	writeFile(t, filepath.Join(e.dir, "big.log"), strings.Repeat("x", 3<<20))
	return e, st, hs.URL
}

// waitProgress waits for an UPLOADING status of id with progress > 0.
func (e *env) waitProgress(t *testing.T, id string) {
	t.Helper()
	e.cloud.waitFor("progress of "+id, func() bool {
		for _, s := range e.cloud.statusesLocked(id) {
			if s.State == "UPLOADING" && s.Progress > 0 {
				return true
			}
		}
		return false
	})
}

func TestCancelDuringUpload(t *testing.T) {
	e, st, url := slowEnv(t)
	e.trigger(t, `{"correlationId":"c"}`, "c", 1)
	e.start(t, "c#1", map[string]string{"https.url": url + "/big.log"})
	e.waitProgress(t, "c")
	if r := e.cloud.op("cancel", `{"correlationId":"c#1","statusCode":"499","message":"operator stop"}`, true); r.Status != 204 {
		t.Fatalf("cancel: %d %s", r.Status, r.Value)
	}
	ss := e.cloud.final("c")
	last := ss[len(ss)-1]
	if last.State != "CANCELED" || last.StatusCode != "499" || last.Message != "operator stop" || last.EndTime == "0001-01-01T00:00:00Z" {
		t.Errorf("final %+v", last)
	}
	if _, ok := st.get("big.log"); ok {
		t.Error("canceled upload was stored")
	}
	if r := e.cloud.op("cancel", `{"correlationId":"c","statusCode":"1"}`, true); r.Status != 409 {
		t.Errorf("second cancel: %d %s", r.Status, r.Value)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "big.log")); err != nil {
		t.Errorf("file gone after cancel: %v", err)
	}
}

func TestFileVanishesDuringUpload(t *testing.T) {
	e, st, url := slowEnv(t)
	e.trigger(t, `{"correlationId":"v"}`, "v", 1)
	e.start(t, "v#1", map[string]string{"https.url": url + "/big.log"})
	e.waitProgress(t, "v")
	must(t, os.Remove(filepath.Join(e.dir, "big.log")))
	ss := e.cloud.final("v")
	if last := ss[len(ss)-1]; last.State != "FAILED" || !strings.Contains(last.Message, "vanished") {
		t.Errorf("final %+v", last)
	}
	if _, ok := st.get("big.log"); ok {
		t.Error("vanished file stored")
	}
}

func TestFileGrowsDuringUpload(t *testing.T) {
	e, st, url := slowEnv(t)
	e.trigger(t, `{"correlationId":"g"}`, "g", 1)
	e.start(t, "g#1", map[string]string{"https.url": url + "/big.log"})
	e.waitProgress(t, "g")
	f, err := os.OpenFile(filepath.Join(e.dir, "big.log"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, _ = f.WriteString("appended")
	f.Close()
	ss := e.cloud.final("g")
	if last := ss[len(ss)-1]; last.State != "FAILED" || !strings.Contains(last.Message, "size changed") {
		t.Errorf("final %+v", last)
	}
	if _, ok := st.get("big.log"); ok {
		t.Error("grown file stored")
	}
}

// TestWrongCredentialsStatus: a rejected upload ends FAILED with the
// server's reason.
func TestWrongCredentialsStatus(t *testing.T) {
	e := newEnv(t, nil)
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	hs := newAuthServer(t)
	e.trigger(t, `{"correlationId":"w"}`, "w", 1)
	e.start(t, "w#1", map[string]string{"https.url": hs + "/a.log", "https.header.Authorization": "Bearer wrong"})
	ss := e.cloud.final("w")
	if last := ss[len(ss)-1]; last.State != "FAILED" || !strings.Contains(last.Message, "401") {
		t.Errorf("final %+v", last)
	}
}

// TestSingleUpload refuses a trigger while an upload runs, unless forced.
func TestSingleUpload(t *testing.T) {
	_, hs := newStore(t)
	e := newEnv(t, func(c *Config) { c.SingleUpload = true; c.UploadRate = 1 << 20 })
	writeFile(t, filepath.Join(e.dir, "big.log"), strings.Repeat("x", 2<<20))
	e.trigger(t, `{"correlationId":"one"}`, "one", 1)
	e.start(t, "one#1", map[string]string{"https.url": hs.URL + "/big.log"})
	e.waitProgress(t, "one")
	if r := e.cloud.op("trigger", `{"correlationId":"two"}`, true); r.Status != 500 || !strings.Contains(string(r.Value), "singleUpload") {
		t.Errorf("second trigger: %d %s", r.Status, r.Value)
	}
	e.trigger(t, `{"correlationId":"three","options":{"force":"true"}}`, "three", 1)
	if ss := e.cloud.final("one"); ss[len(ss)-1].State != "SUCCESS" {
		t.Errorf("final %+v", ss[len(ss)-1])
	}
}

// TestPeriodicInsideWindow: activate with a window around now and a short
// period; uploads are triggered (each with a new upload-id), then
// deactivate stops them and resets autoUpload.
func TestPeriodicInsideWindow(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Period = Duration(200 * time.Millisecond) })
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	from := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if r := e.cloud.op("activate", `{"from":"`+from+`","to":"`+to+`"}`, true); r.Status != 204 {
		t.Fatalf("activate %d %s", r.Status, r.Value)
	}
	e.cloud.waitFor("two periodic requests", func() bool {
		ids := map[string]bool{}
		for _, r := range e.cloud.requestsLocked() {
			if strings.HasPrefix(r.CorrelationID, "upload-id-") {
				ids[r.CorrelationID] = true
			}
		}
		return len(ids) >= 2
	})
	e.cloud.waitFor("autoUpload active", func() bool {
		return e.cloud.autoLocked() == `{"active":true,"startTime":"`+from+`","endTime":"`+to+`"}`
	})
	if r := e.cloud.op("deactivate", ``, true); r.Status != 204 {
		t.Fatalf("deactivate %d", r.Status)
	}
	e.cloud.waitFor("autoUpload inactive", func() bool {
		return e.cloud.autoLocked() == `{"active":false,"startTime":null,"endTime":null}`
	})
}

// TestPeriodicOutsideWindow: a window that already ended triggers nothing,
// and the configured initial window is reported in autoUpload.
func TestPeriodicOutsideWindow(t *testing.T) {
	from := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	e := newEnv(t, func(c *Config) { c.Period = Duration(50 * time.Millisecond); c.ActiveFrom = from; c.ActiveTill = to })
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	e.cloud.waitFor("autoUpload", func() bool { return strings.Contains(e.cloud.autoLocked(), `"active":true`) })
	// A manual trigger afterwards is the first and only upload.
	reqs := e.trigger(t, `{"correlationId":"manual"}`, "manual", 1)
	e.cloud.mu.Lock()
	all := e.cloud.requestsLocked()
	e.cloud.mu.Unlock()
	if len(all) != len(reqs) {
		t.Errorf("periodic uploads outside the window: %+v", all)
	}
}
