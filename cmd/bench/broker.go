package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/kafkahub/kafkahub/kafkatest"
)

// childEnv, when set, makes the binary serve an embedded cluster instead of
// benchmarking: the parent starts its own executable this way so that the
// broker's CPU profile, allocations and memory stay out of the client's
// figures. The value is the number of brokers.
const childEnv = "KAFKABENCH_BROKER_CHILD"

// serveChild starts the embedded cluster, prints its addresses on one line,
// and serves until its standard input closes (the parent exited or is done).
func serveChild(brokers string) int {
	n, err := strconv.Atoi(brokers)
	if err != nil || n < 1 {
		n = 1
	}
	c, err := kafkatest.StartCluster(kafkatest.Brokers(n))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkabench broker:", err)
		return 1
	}
	defer c.Close()
	fmt.Println(strings.Join(c.Addrs(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// broker is the cluster under test plus what the benchmark needs to manage
// topics on it.
type broker struct {
	addrs    []string
	kind     string // "embedded" or "kafka"
	cluster  *kafkatest.Cluster
	admin    sarama.ClusterAdmin
	child    *exec.Cmd
	childIn  io.WriteCloser
	childOut chan error
}

// startBroker connects to KAFKA_BROKERS when set; otherwise it starts the
// embedded kafkatest cluster, in a child process unless inProcess.
func startBroker(brokers int, inProcess bool) (*broker, error) {
	b := &broker{kind: "embedded"}
	switch {
	case kafkatest.External():
		b.kind = "kafka"
	case !inProcess:
		if err := b.spawn(brokers); err != nil {
			return nil, err
		}
		// kafkatest treats KAFKA_BROKERS as "use this cluster": the child's.
		if err := os.Setenv(kafkatest.EnvBrokers, strings.Join(b.addrs, ",")); err != nil {
			b.close()
			return nil, err
		}
	}
	c, err := kafkatest.StartCluster(kafkatest.Brokers(brokers))
	if err != nil {
		b.close()
		return nil, err
	}
	b.cluster = c
	b.addrs = c.Addrs()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "kafkabench-admin"
	b.admin, err = sarama.NewClusterAdmin(b.addrs, cfg)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return b, nil
}

func (b *broker) spawn(brokers int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(brokers))
	// The child must not itself run test or benchmark code when exe is a
	// test binary: TestMain serves the broker before flags are parsed.
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting broker process: %w", err)
	}
	b.child, b.childIn = cmd, in
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		if !ok || l == "" {
			b.close()
			return errors.New("broker process exited before printing its addresses")
		}
		b.addrs = strings.Split(l, ",")
		return nil
	case <-time.After(30 * time.Second):
		b.close()
		return errors.New("broker process did not start within 30s")
	}
}

func (b *broker) close() {
	if b.admin != nil {
		_ = b.admin.Close()
	}
	if b.cluster != nil {
		b.cluster.Close()
	}
	if b.child != nil {
		_ = b.childIn.Close()
		done := make(chan error, 1)
		go func() { done <- b.child.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = b.child.Process.Kill()
			<-done
		}
		b.child = nil
	}
}

// newTopic creates a uniquely named topic and waits for its leaders.
func (b *broker) newTopic(prefix string, partitions int) (string, error) {
	name := kafkatest.UniqueName("bench-" + prefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.cluster.CreateTopic(ctx, name, int32(partitions)); err != nil {
		return "", err
	}
	return name, nil
}

// deleteTopic frees the broker's memory (embedded) or disk (Kafka).
func (b *broker) deleteTopic(name string) {
	if err := b.admin.DeleteTopic(name); err != nil {
		logf("deleting topic %s: %v", name, err)
	}
}
