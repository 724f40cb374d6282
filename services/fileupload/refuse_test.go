package fileupload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/services/fileupload/files"
)

type opErr struct {
	Error   string `json:"error"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// TestOperationsRefused sends malformed and unacceptable operations and
// checks the reply status, error code and message.
func TestOperationsRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Mode = string(files.Scoped) })
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.log"), "secret")
	must(t, os.Symlink(filepath.Join(outside, "secret.log"), filepath.Join(e.dir, "link.log")))
	for _, tc := range []struct {
		name, op, value string
		status          int
		code, message   string
	}{
		{"id not a string", "trigger", `{"correlationId":5}`, 400, "messages:parameter.invalid", "correlationId"},
		{"a string", "trigger", `"upload please"`, 400, "messages:parameter.invalid", "JSON object"},
		{"not an object", "trigger", `[1,2]`, 400, "messages:parameter.invalid", "JSON object"},
		{"options not strings", "trigger", `{"options":{"upload.files":5}}`, 400, "messages:parameter.invalid", "options"},
		{"symlink out", "trigger", `{"correlationId":"sym"}`, 500, "messages:execution.failed", "outside"},
		{"glob outside", "trigger", `{"options":{"upload.files":"/etc/*"}}`, 500, "messages:execution.failed", "not within"},
		{"dot dot", "trigger", `{"options":{"upload.files":"` + e.dir + `/../*.log"}}`, 500, "messages:execution.failed", ""},
		{"bad glob", "trigger", `{"options":{"upload.files":"` + e.dir + `/[.log"}}`, 500, "messages:execution.failed", ""},
		{"start unknown", "start", `{"correlationId":"nope#1","options":{}}`, 404, "messages:parameter.invalid", "upload with correlation ID 'nope#1' not found"},
		{"start no id", "start", `{"options":{}}`, 400, "messages:parameter.invalid", "correlationId"},
		{"start null", "start", `null`, 400, "messages:parameter.invalid", ""},
		{"cancel unknown", "cancel", `{"correlationId":"nope","statusCode":"1"}`, 404, "messages:parameter.invalid", "not found"},
		{"cancel numeric code", "cancel", `{"correlationId":"x","statusCode":400}`, 400, "messages:parameter.invalid", "statusCode"},
		{"activate to before from", "activate", `{"from":"2030-01-02T00:00:00Z","to":"2030-01-01T00:00:00Z"}`, 400, "messages:parameter.invalid", "before"},
		{"activate epoch", "activate", `{"from":1700000000}`, 400, "messages:parameter.invalid", ""},
		{"unknown op", "explode", `{}`, 400, "messages:execution.failed", "Unsupported operation: explode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.cloud.op(tc.op, tc.value, true)
			var got opErr
			_ = json.Unmarshal(r.Value, &got)
			if r.Status != tc.status || got.Status != tc.status || got.Error != tc.code || !strings.Contains(got.Message, tc.message) {
				t.Errorf("reply %d %s, want %d %s containing %q", r.Status, r.Value, tc.status, tc.code, tc.message)
			}
			if r.Headers.ContentType() != "application/json" {
				t.Errorf("content-type %q", r.Headers.ContentType())
			}
		})
	}
	// Nothing was requested: every refused trigger stopped before files
	// were offered.
	e.cloud.mu.Lock()
	reqs := e.cloud.requestsLocked()
	e.cloud.mu.Unlock()
	if len(reqs) != 0 {
		t.Errorf("requests sent for refused triggers: %+v", reqs)
	}

	// Without response-required no reply is sent (checked by a later op
	// overtaking it: replies are in order per subscription).
	e.cloud.op("explode", `{}`, false)
	if r := e.cloud.op("deactivate", `{}`, true); r.Status != 204 {
		t.Errorf("deactivate: %d", r.Status)
	}
	e.cloud.mu.Lock()
	n := len(e.cloud.replies)
	e.cloud.mu.Unlock()
	if want := 17; n != want {
		t.Errorf("%d replies, want %d (a reply was sent without response-required)", n, want)
	}
}

// TestStartRefused covers start errors of a known upload: the parent id,
// a missing provider option, a second start.
func TestStartRefused(t *testing.T) {
	st, hs := newStore(t)
	e := newEnv(t, nil)
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	e.trigger(t, `{"correlationId":"p"}`, "p", 1)
	for _, tc := range []struct {
		value   string
		status  int
		message string
	}{
		{`{"correlationId":"p","options":{}}`, 500, "cannot be started - start the individual uploads"},
		{`{"correlationId":"p#1","options":{"storage.provider":"aws","aws.region":"r"}}`, 500, "required parameter 'aws.access.key.id' missing or empty"},
		{`{"correlationId":"p#1","options":{"storage.provider":"ftp"}}`, 500, "unsupported storage provider 'ftp'"},
		{`{"correlationId":"p#1","options":{"https.url":"` + hs.URL + `/a.log"}}`, 204, ""},
		{`{"correlationId":"p#1","options":{"https.url":"` + hs.URL + `/a.log"}}`, 500, "already"},
	} {
		r := e.cloud.op("start", tc.value, true)
		var got opErr
		_ = json.Unmarshal(r.Value, &got)
		if r.Status != tc.status || !strings.Contains(got.Message, tc.message) {
			t.Errorf("start %s: %d %s, want %d %q", tc.value, r.Status, r.Value, tc.status, tc.message)
		}
	}
	if ss := e.cloud.final("p"); ss[len(ss)-1].State != "SUCCESS" {
		t.Errorf("final %+v", ss[len(ss)-1])
	}
	if b, _ := st.get("a.log"); string(b) != "a" {
		t.Errorf("stored %q", b)
	}
}

// TestStrictMode: a trigger glob must equal the configured one.
func TestStrictMode(t *testing.T) {
	e := newEnv(t, nil)
	writeFile(t, filepath.Join(e.dir, "a.log"), "a")
	r := e.cloud.op("trigger", `{"options":{"upload.files":"`+filepath.Join(e.dir, "a.log")+`"}}`, true)
	if r.Status != 500 || !strings.Contains(string(r.Value), "strict") {
		t.Errorf("narrower glob in strict mode: %d %s", r.Status, r.Value)
	}
	e.trigger(t, `{"correlationId":"s","options":{"upload.files":"`+filepath.Join(e.dir, "*.log")+`"}}`, "s", 1)
}
