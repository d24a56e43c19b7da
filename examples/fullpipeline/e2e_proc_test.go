package main

// Helpers of the end-to-end tests: the fullpipeline binary run as a
// subprocess, its output and its signals.

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// e2eProc is the fullpipeline binary running as a subprocess. Its stderr is
// kept, and written to the test log if the test fails; it is killed when the
// test ends if it still runs. With $E2E_VERBOSE set the output is always
// logged; with $E2E_LOGDIR set it is also written whole to a file there.
type e2eProc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	out     *e2eBuffer
	started time.Time
	done    chan struct{}
	waitErr error
	quitted bool // quit made it dump its goroutines: the cleanup logs all of its output
}

// e2eBuffer is a goroutine-safe buffer.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func e2eStart(t *testing.T, name string, args ...string) *e2eProc {
	t.Helper()
	return e2eStartCmd(t, name, exec.Command(e2eBinary(t), args...))
}

// e2eStartCmd starts cmd, a command that runs the binary, as e2eStart does.
func e2eStartCmd(t *testing.T, name string, cmd *exec.Cmd) *e2eProc {
	t.Helper()
	p := &e2eProc{t: t, name: name, cmd: cmd, out: &e2eBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Started with SIGHUP ignored (as by nohup), this process would hand the
	// ignore down; a signal it handles is reset to the default in the child
	// instead, so it handles SIGHUP while the child forks. (Always: once
	// Notify ran, signal.Ignored reports false though the ignore is back.)
	start := func() error {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		return p.cmd.Start()
	}
	require.NoError(t, start(), "start %s", name)
	p.started = time.Now()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		switch {
		case p.quitted:
			p.dump(math.MaxInt)
		case t.Failed() || os.Getenv("E2E_VERBOSE") != "":
			p.dump(200)
		}
		if dir := os.Getenv("E2E_LOGDIR"); dir != "" {
			name := strings.NewReplacer(" ", "_", "/", "_").Replace(t.Name() + "-" + p.name + ".log")
			_ = os.WriteFile(filepath.Join(dir, name), []byte(p.out.String()), 0o644)
		}
	})
	return p
}

func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// dump writes the last n lines of the process's output to the test log.
func (p *e2eProc) dump(n int) {
	lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	skipped := max(0, len(lines)-n)
	p.t.Logf("---- %s (%v): last %d of %d lines of output ----\n%s\n---- end of %s ----", p.name, p.cmd.Args[1:],
		len(lines)-skipped, len(lines), strings.Join(lines[skipped:], "\n"), p.name)
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal ended it); it fails the test when timeout passes first.
func (p *e2eProc) wait(timeout time.Duration) int {
	p.t.Helper()
	if !p.exited() {
		select {
		case <-p.done:
		case <-time.After(timeout):
			p.t.Fatalf("%s still running after %v", p.name, timeout)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// mustSucceed waits for the process to exit 0.
func (p *e2eProc) mustSucceed(timeout time.Duration) {
	p.t.Helper()
	if code := p.wait(timeout); code != 0 {
		p.t.Fatalf("%s exited with %d (%v)", p.name, code, p.waitErr)
	}
}

func (p *e2eProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.exited() {
		p.t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// quit makes a hung process dump its goroutines into its output and exit
// (SIGQUIT), for the diagnosis of a hang.
func (p *e2eProc) quit() {
	if p.exited() {
		return
	}
	p.quitted = true
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// contains reports whether the output holds s.
func (p *e2eProc) contains(s string) bool { return strings.Contains(p.out.String(), s) }

// waitOutput waits until the output holds one of ss (true) or the process
// exits (false); it fails the test when timeout passes first.
func (p *e2eProc) waitOutput(timeout time.Duration, ss ...string) bool {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.out.String()
		for _, s := range ss {
			if strings.Contains(out, s) {
				return true
			}
		}
		if p.exited() {
			return false
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: none of %q in its output after %v", p.name, ss, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastLine returns the last output line holding s, "" if none.
func (p *e2eProc) lastLine(s string) string {
	last := ""
	for line := range strings.Lines(p.out.String()) {
		if strings.Contains(line, s) {
			last = strings.TrimSpace(line)
		}
	}
	return last
}

// countLines counts the output lines holding s.
func (p *e2eProc) countLines(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}
