package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	tests := map[string]slog.Level{
		"TRACE": LevelTrace, "debug": slog.LevelDebug, "Info": slog.LevelInfo,
		"WARN": slog.LevelWarn, "ERROR": slog.LevelError, "bogus": slog.LevelError, "": slog.LevelError,
	}
	for in, want := range tests {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{LogFileSize: 0, LogFileCount: 1},
		{LogFileSize: 1, LogFileCount: 0},
		{LogFileSize: 1, LogFileCount: 1, LogFileMaxAge: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", c, err)
		}
	}
	if err := Defaults("x.log").Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestFileAndLevels(t *testing.T) {
	dir := t.TempDir()
	c := Defaults(filepath.Join(dir, "sub", "svc.log"))
	c.LogLevel = "TRACE"
	log, closer, err := New(c, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Log(t.Context(), LevelTrace, "deep", "k", 1)
	log.Info("hello")
	closer.Close()
	data, err := os.ReadFile(c.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"level=TRACE msg=deep", "service=svc", "msg=hello"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}

	var buf bytes.Buffer
	c = Defaults("")
	c.LogLevel = "WARN"
	log, _, _ = New(c, "svc", &buf)
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("stderr log at WARN: %s", buf.String())
	}
}
