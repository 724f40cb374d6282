package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kantofw/kanto/services/internal/cli"
)

func runKanto(argv ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code = run(context.Background(), argv, env)
	return code, out.String(), errb.String()
}

func TestDispatch(t *testing.T) {
	version = "9.8.7-test"
	t.Cleanup(func() { version = "dev" })

	code, out, _ := runKanto("/usr/bin/kanto", "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("help does not list %s", name)
		}
	}
	for _, v := range []string{"version", "--version"} {
		if code, out, _ := runKanto("kanto", v); code != 0 || out != "9.8.7-test\n" {
			t.Errorf("kanto %s: exit %d, %q", v, code, out)
		}
	}
	if code, _, errOut := runKanto("kanto", "no-such-service"); code != 2 || !strings.Contains(errOut, `unknown command "no-such-service"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, _ := runKanto("kanto"); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
	// Called through a symlink named after an upstream binary: the name
	// picks the service, and its -version prints the build's version.
	for _, name := range []string{"suite-connector", "aws-connector", "local-digital-twins", "update-manager"} {
		code, out, errOut := runKanto("/usr/bin/"+name, "-version")
		if code != 0 || !strings.Contains(out, "9.8.7-test") {
			t.Errorf("%s -version: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
	}
}
