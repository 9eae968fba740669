// Command device is a small tcphub device: it connects to a gateway, sends
// requests and prints each ack and response with its latency, and prints
// the pushes it receives.
//
//	go run ./examples/device -addr localhost:7400 -id sensor-1 -token "$(go run ./examples/token -id sensor-1)" -n 5
//
// -token (or TCPHUB_TOKEN) is the hello's token; a device holds its token,
// never the secret it is minted with (examples/token mints one, as a
// provisioning service would). The program uses only the device client,
// tcphub/device, so it links no Kafka client. With -stdin each line read is
// sent as a request payload (JSON, or text sent as bytes). With -stay the
// device keeps its connection after the requests and prints pushes until
// interrupted, reconnecting when the gateway goes away.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kafkahub/kafkahub/tcphub/device"
)

func main() {
	addr := flag.String("addr", "localhost:7400", "gateway address")
	id := flag.String("id", "device-1", "device id")
	token := flag.String("token", os.Getenv("TCPHUB_TOKEN"), "token for the hello (TCPHUB_TOKEN)")
	n := flag.Int("n", 3, "requests to send (ignored with -stdin)")
	interval := flag.Duration("interval", time.Second, "pause between requests")
	stdin := flag.Bool("stdin", false, "send each line of standard input as a request")
	wait := flag.Duration("wait", 10*time.Second, "how long to wait for each response; 0: do not wait")
	stay := flag.Bool("stay", false, "stay connected and print pushes until interrupted")
	caFile := flag.String("tls-ca", "", "CA file: connect with TLS and verify the gateway with it")
	certFile := flag.String("tls-cert", "", "client certificate file, for mutual TLS")
	keyFile := flag.String("tls-key", "", "client key file, for mutual TLS")
	verbose := flag.Bool("v", false, "log the client's reconnects and errors")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(ctx, log, *addr, *id, *token, *n, *interval, *stdin, *wait, *stay, *caFile, *certFile, *keyFile); err != nil {
		fmt.Fprintln(os.Stderr, "device:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, addr, id, token string, n int, interval time.Duration,
	stdin bool, wait time.Duration, stay bool, caFile, certFile, keyFile string) error {
	opts := device.Options{DeviceID: id, Token: token, ClientName: "kafkahub-example-device/1", Logger: log}
	if caFile != "" || certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s: no PEM certificate", caFile)
			}
		}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return err
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.TLSConfig = tc
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	c, err := device.Dial(dctx, addr, opts)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("connected to %s as %s, session %s\n", addr, id, c.SessionID())

	go func() {
		for p := range c.Pushes() {
			fmt.Printf("push %s (%s): %s\n", p.ID, p.ContentType, p.Payload)
		}
	}()

	send := func(i int, payload []byte) error {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		call, err := c.Request(rctx, payload)
		if err != nil {
			return err
		}
		fmt.Printf("request %d %s: ack in %v\n", i, call.ID, time.Since(start).Round(time.Microsecond))
		if wait <= 0 {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		resp, err := call.Response(wctx)
		if err != nil {
			fmt.Printf("request %d %s: no response: %v\n", i, call.ID, err)
			return nil
		}
		fmt.Printf("request %d %s: response %d in %v: %s\n", i, call.ID, resp.Status, time.Since(start).Round(time.Microsecond), resp.Payload)
		return nil
	}

	if stdin {
		lines := bufio.NewScanner(os.Stdin)
		for i := 1; lines.Scan(); i++ {
			if err := send(i, lines.Bytes()); err != nil {
				return err
			}
		}
		if err := lines.Err(); err != nil {
			return err
		}
	} else {
		for i := 1; i <= n; i++ {
			if err := send(i, fmt.Appendf(nil, `{"seq":%d,"at":%q}`, i, time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
			if i < n {
				select {
				case <-time.After(interval):
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
	if stay {
		fmt.Println("waiting for pushes; Ctrl-C to quit")
		<-ctx.Done()
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return nil
}
