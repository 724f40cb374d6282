// Package logging builds the slog logger of a service from Kanto's log
// settings (logFile, logLevel, logFileSize, logFileCount, logFileMaxAge).
package logging

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// LevelTrace is below Debug; Kanto configs may say TRACE.
const LevelTrace = slog.LevelDebug - 4

// Config holds Kanto's log keys. The JSON names are the upstream ones.
type Config struct {
	LogFile       string `json:"logFile"`
	LogLevel      string `json:"logLevel"`
	LogFileSize   int    `json:"logFileSize"`   // MB
	LogFileCount  int    `json:"logFileCount"`  // rotated files kept
	LogFileMaxAge int    `json:"logFileMaxAge"` // days
}

// Defaults returns upstream's defaults with the given log file.
func Defaults(file string) Config {
	return Config{LogFile: file, LogLevel: "INFO", LogFileSize: 2, LogFileCount: 5, LogFileMaxAge: 28}
}

// ErrInvalid marks log settings that cannot be used.
var ErrInvalid = errors.New("invalid log settings")

// Validate applies upstream's static checks.
func (c Config) Validate() error {
	switch {
	case c.LogFileSize <= 0:
		return fmt.Errorf("logFileSize must be > 0 (got %d): %w", c.LogFileSize, ErrInvalid)
	case c.LogFileCount <= 0:
		return fmt.Errorf("logFileCount must be > 0 (got %d): %w", c.LogFileCount, ErrInvalid)
	case c.LogFileMaxAge < 0:
		return fmt.Errorf("logFileMaxAge must be >= 0 (got %d): %w", c.LogFileMaxAge, ErrInvalid)
	}
	return nil
}

// RegisterFlags binds the upstream flag names to c.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.LogFile, "logFile", c.LogFile, "log file; empty logs to stderr")
	fs.StringVar(&c.LogLevel, "logLevel", c.LogLevel, "ERROR, WARN, INFO, DEBUG or TRACE")
	fs.IntVar(&c.LogFileSize, "logFileSize", c.LogFileSize, "size in MB at which the log file is rotated")
	fs.IntVar(&c.LogFileCount, "logFileCount", c.LogFileCount, "rotated log files kept")
	fs.IntVar(&c.LogFileMaxAge, "logFileMaxAge", c.LogFileMaxAge, "days a rotated log file is kept")
}

// ParseLevel maps Kanto's level names; unknown names mean ERROR, as upstream.
func ParseLevel(s string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "TRACE":
		return LevelTrace
	case "DEBUG":
		return slog.LevelDebug
	case "INFO":
		return slog.LevelInfo
	case "WARN", "WARNING":
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// New returns the logger and a closer for its file. stderr is used when
// LogFile is empty. The service name travels as the "service" attribute.
func New(c Config, service string, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	var w io.Writer = stderr
	var closer io.Closer = io.NopCloser(nil)
	if c.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogFile), 0o755); err != nil {
			return nil, nil, fmt.Errorf("log directory: %w", err)
		}
		lj := &lumberjack.Logger{
			Filename:   c.LogFile,
			MaxSize:    c.LogFileSize,
			MaxBackups: c.LogFileCount,
			MaxAge:     c.LogFileMaxAge,
			LocalTime:  true,
			Compress:   true,
		}
		w, closer = lj, lj
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: ParseLevel(c.LogLevel),
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l == LevelTrace {
					a.Value = slog.StringValue("TRACE")
				}
			}
			return a
		},
	})
	return slog.New(h).With("service", service), closer, nil
}

// Discard is a logger for tests and tools that log nothing.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
