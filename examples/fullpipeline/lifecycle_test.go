package main

// Start-up and shutdown of the fullpipeline binary: a clean stop on a signal
// exits 0, and an external service that answers nothing at start is an
// error within -connect-timeout. They run the binary of e2eBinary with
// embedded services or none, so they need neither KAFKA_BROKERS nor
// MONGODB_URI.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"
)

// lifecycleCtx is the test's context, ending within d or a little before
// the test binary's deadline, whichever comes first.
func lifecycleCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// waitLines polls p's output until it holds a match of every pattern; it
// fails the test when p exits first or ctx ends.
func waitLines(ctx context.Context, p *e2eProc, what string, patterns ...*regexp.Regexp) {
	p.t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, all := p.out.String(), true
		for _, re := range patterns {
			all = all && re.MatchString(out)
		}
		switch {
		case all:
			return
		case p.exited():
			p.t.Fatalf("%s exited (%v) before %s", p.name, p.waitErr, what)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			p.t.Fatalf("%s: %v waiting for %s", p.name, ctx.Err(), what)
		}
	}
}

// waitExit waits for p to exit and returns its exit code (-1 when a signal
// ended it); it fails the test when ctx ends first.
func waitExit(ctx context.Context, p *e2eProc) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-ctx.Done():
		p.quit() // its goroutines, into the output the cleanup logs
		p.t.Fatalf("%s: %v waiting for it to exit", p.name, ctx.Err())
		return -1
	}
}

var runningLines = []*regexp.Regexp{
	regexp.MustCompile(`msg="dashboard and read API" url=http://127\.0\.0\.1:\d+/`),
	regexp.MustCompile(`msg="kafka: session started"`),
	regexp.MustCompile(`msg=progress events_per_s=\d+ read=[1-9]`), // it reads events
}

// TestCleanStopExitsZero runs the default demo (embedded broker, producer
// and MongoDB-wire server, Parquet, the read API on a free port) until it
// reads events, stops it with SIGINT (Ctrl-C), SIGTERM or SIGHUP, and checks that it
// shut down cleanly with exit status 0: what `make run` reports after Ctrl-C.
// The demo gets SIGHUP at its default even when this test runs under nohup
// (e2eStartCmd).
func TestCleanStopExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx := lifecycleCtx(t, 2*time.Minute)
			p := e2eStart(t, "demo", "-data", t.TempDir(), "-http", "127.0.0.1:0", "-rate", "2000", "-progress", "200ms")
			waitLines(ctx, p, "the demo to run", runningLines...)
			p.signal(sig)
			if code := waitExit(ctx, p); code != 0 {
				t.Fatalf("exit status %d after %v, want 0 (%v)", code, sig, p.waitErr)
			}
			for _, want := range []string{`msg="stopping: writing what was processed"`, "msg=done"} {
				if !p.contains(want) {
					t.Errorf("no %s in the output: not a clean shutdown", want)
				}
			}
			if p.contains("level=ERROR") {
				t.Errorf("the shutdown logged an error: %s", p.lastLine("level=ERROR"))
			}
			if p.contains("msg=retrying") { // the embedded server stopped before the last write
				t.Errorf("the shutdown retried a write: %s", p.lastLine("msg=retrying"))
			}
		})
	}
}

// TestHangupIgnoredUnderNohup starts the demo under nohup, that is with
// SIGHUP ignored: a hangup leaves it running (it goes on reading and
// reporting progress), and SIGINT still stops it cleanly.
func TestHangupIgnoredUnderNohup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary")
	}
	nohup, err := exec.LookPath("nohup")
	if err != nil {
		t.Skip("no nohup here")
	}
	ctx := lifecycleCtx(t, 2*time.Minute)
	p := e2eStartCmd(t, "demo", exec.Command(nohup, e2eBinary(t), "-data", t.TempDir(), "-http", "127.0.0.1:0", "-rate", "2000", "-progress", "100ms"))
	waitLines(ctx, p, "the demo to run", runningLines...)
	p.signal(syscall.SIGHUP)
	after := p.countLines("msg=progress ")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for p.countLines("msg=progress ") < after+3 { // three more reports: it did not stop
		if p.exited() || p.contains(`msg="stopping: writing what was processed"`) {
			t.Fatalf("the demo stopped on SIGHUP under nohup (%v)", p.waitErr)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%v waiting for progress after SIGHUP", ctx.Err())
		}
	}
	p.signal(syscall.SIGINT)
	if code := waitExit(ctx, p); code != 0 {
		t.Fatalf("exit status %d after SIGINT, want 0 (%v)", code, p.waitErr)
	}
	if !p.contains("msg=done") {
		t.Errorf("no msg=done in the output: not a clean shutdown")
	}
}

// TestUnreachableServiceAtStart points -mongo and a kafka:// source at a
// closed port and at one that accepts connections but never answers: start-up
// fails within -connect-timeout with an error naming the service, its
// address and the setting, where it used to retry for ever.
func TestUnreachableServiceAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binary")
	}
	closed := fmt.Sprintf("127.0.0.1:%d", e2eFreePort(t))
	silent := silentListener(t)
	cases := []struct {
		name, service, addr string
		args                []string
	}{
		{"mongo closed port", "mongodb", closed, []string{"-source", "file:testdata/replay/input.jsonl", "-mongo", "mongodb://" + closed + "/"}},
		{"mongo silent", "mongodb", silent, []string{"-source", "file:testdata/replay/input.jsonl", "-mongo", "mongodb://" + silent + "/"}},
		{"kafka closed port", "kafka brokers", closed, []string{"-source", "kafka://" + closed + "/events_raw?group=g", "-mongo", "off"}},
		{"kafka silent", "kafka brokers", silent, []string{"-source", "kafka://" + silent + "/events_raw?group=g", "-mongo", "off"}},
		{"mongo closed port, connect_timeout in -config", "mongodb", closed, []string{"-source", "file:testdata/replay/input.jsonl",
			"-mongo", "mongodb://" + closed + "/", "-config", connectTimeoutConfig(t)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := lifecycleCtx(t, time.Minute)
			args := append(tc.args, "-http", "off", "-parquet", "off", "-checkpoints", t.TempDir(), "-data", t.TempDir())
			if !slices.Contains(args, "-config") {
				args = append(args, "-connect-timeout", "2s")
			}
			p := e2eStart(t, tc.name, args...)
			if code := waitExit(ctx, p); code == 0 {
				t.Fatalf("exit status 0, want an error")
			}
			want := regexp.MustCompile(`level=ERROR msg="fullpipeline failed" err="` + regexp.QuoteMeta(tc.service+" "+tc.addr) +
				`: not reachable within -connect-timeout 2s \(connect_timeout\): `)
			if !want.MatchString(p.out.String()) {
				t.Errorf("no error matching %s in the output:\n%s", want, p.out.String())
			}
		})
	}
}

// connectTimeoutConfig writes a -config file that sets connect_timeout: 2s.
func connectTimeoutConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "project.yaml")
	if err := os.WriteFile(path, []byte("connect_timeout: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// silentListener returns the address of a listener that accepts
// connections and never writes: a server that hangs.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c) // held open, unread
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestConnectTimeoutSetting(t *testing.T) {
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.connectTimeout != defaultConnectTimeout || o.connectTimeoutSet {
		t.Errorf("default: %v (set %v), want %v", o.connectTimeout, o.connectTimeoutSet, defaultConnectTimeout)
	}
	if o, err = parseFlags([]string{"-connect-timeout", "5s", "-http", "off"}); err != nil || o.connectTimeout != 5*time.Second || !o.connectTimeoutSet {
		t.Errorf("-connect-timeout 5s: %v (set %v), %v", o.connectTimeout, o.connectTimeoutSet, err)
	}
	for _, bad := range []string{"0s", "-1s"} {
		if _, err := parseFlags([]string{"-connect-timeout", bad}); err == nil {
			t.Errorf("-connect-timeout %s: no error", bad)
		}
	}
}

// TestMakeRunCtrlC runs `make run` on a terminal (a pseudo-terminal of
// script(1)) and types Ctrl-C once the demo reads events: make must exit 0.
// Ctrl-C sends SIGINT to the terminal's foreground process group, so this
// checks what the binary test above cannot: that the signal reaches the
// demo alone, and not make or `go run`, which would fail however the demo
// ended.
func TestMakeRunCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo through make")
	}
	for _, tool := range []string{"make", "script", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	ctx := lifecycleCtx(t, 3*time.Minute)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	makeRun := fmt.Sprintf("make --no-print-directory -C %s run BIN=%s ARGS='-data %s -http 127.0.0.1:0 -rate 50 -progress 200ms'",
		root, filepath.Join(t.TempDir(), "fullpipeline"), t.TempDir())
	p := &e2eProc{t: t, name: "make run", out: &e2eBuffer{}, done: make(chan struct{})}
	// --return: script's status is make's
	p.cmd = exec.Command("script", "--quiet", "--return", "--command", makeRun, "/dev/null")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	tty, err := p.cmd.StdinPipe() // what is typed on the terminal
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill() // the terminal hangs up: the demo stops on SIGHUP
			<-p.done
		}
		if t.Failed() {
			p.dump(60)
		}
	})
	waitLines(ctx, p, "the demo to run", runningLines...)
	if _, err := tty.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if code := waitExit(ctx, p); code != 0 {
		t.Fatalf("make run: exit status %d after Ctrl-C, want 0 (%v)", code, p.waitErr)
	}
	if !p.contains("msg=done") || p.contains("make: ***") {
		t.Errorf("not a clean stop of make run")
	}
	tty.Close()
}
