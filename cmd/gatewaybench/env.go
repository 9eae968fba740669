package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/kafkatest"
)

// benchEnv is what every scenario shares: Kafka and the HMAC secret of the
// devices' tokens.
type benchEnv struct {
	cluster    *kafkatest.Cluster
	brokers    []string
	brokerKind string
	secret     string // hex
	quiet      *slog.Logger
}

func startEnv(ctx context.Context, o options) (*benchEnv, error) {
	c, err := kafkatest.StartCluster(kafkatest.Brokers(1))
	if err != nil {
		return nil, fmt.Errorf("starting Kafka: %w", err)
	}
	kind := "embedded"
	if c.External() {
		kind = "KAFKA_BROKERS"
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &benchEnv{
		cluster: c, brokers: c.Addrs(), brokerKind: kind, secret: hex.EncodeToString(secret),
		quiet: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}, nil
}

func (e *benchEnv) close() { e.cluster.Close() }

func (e *benchEnv) kind(loop bool) string {
	if loop {
		return "in-memory"
	}
	return e.brokerKind
}

// newTopic creates a request topic (and its presence topic) for one run.
func (e *benchEnv) newTopic(ctx context.Context, prefix string, partitions int32) (string, error) {
	name := kafkatest.UniqueName(prefix)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.cluster.CreateTopic(cctx, name, partitions); err != nil {
		return "", fmt.Errorf("creating topic %s: %w", name, err)
	}
	return name, nil
}

func numCPU() int { return runtime.NumCPU() }

// child is this program started again with -role: it answers commands on
// its standard input with lines on its standard output, and exits when its
// standard input closes or this process dies.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	err   error
}

func startChild(name string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	// Killed if this process dies, whatever the reason.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// expect returns the rest of the next line that starts with prefix. A line
// starting with ERR, the child's exit or the timeout is an error.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				<-c.done
				return "", fmt.Errorf("%s exited (%v) before %s", c.name, c.err, prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
			if rest, ok := strings.CutPrefix(l, "ERR "); ok {
				return "", fmt.Errorf("%s: %s", c.name, rest)
			}
			fmt.Fprintf(os.Stderr, "%s: %s\n", c.name, l)
		case <-t.C:
			return "", fmt.Errorf("%s: no %s within %v", c.name, prefix, timeout)
		}
	}
}

// ask sends a command and returns the answer line's rest.
func (c *child) ask(cmd, prefix string, timeout time.Duration) (string, error) {
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		return "", fmt.Errorf("%s: %w", c.name, err)
	}
	return c.expect(prefix, timeout)
}

// stop closes the child's input (it finishes and exits) and waits for it,
// killing it after timeout.
func (c *child) stop(timeout time.Duration) error {
	_ = c.stdin.Close()
	go func() {
		for range c.lines { // keep its output flowing until it exits
		}
	}()
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not exit within %v: killed", c.name, timeout)
	}
	var ee *exec.ExitError
	if c.err != nil && !errors.As(c.err, &ee) {
		return c.err
	}
	if ee != nil {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return nil
}
