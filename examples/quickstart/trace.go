package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// printFirstTrip prints the trace of the earliest device round trip as a
// tree: each span under its parent, with its kind and duration.
func printFirstTrip(w io.Writer, spans []sdktrace.ReadOnlySpan) error {
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == "device round trip" && (root == nil || s.StartTime().Before(root.StartTime())) {
			root = s
		}
	}
	if root == nil {
		return errors.New("no device span recorded")
	}
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
			children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
		}
	}
	fmt.Fprintf(w, "trace %s (first round trip):\n", root.SpanContext().TraceID())
	var walk func(s sdktrace.ReadOnlySpan, depth int) int
	walk = func(s sdktrace.ReadOnlySpan, depth int) int {
		remote := ""
		if s.Parent().IsRemote() {
			remote = "  (parent from Kafka headers)"
			if strings.HasPrefix(s.Name(), "request ") {
				remote = "  (parent from the frame's tp)"
			}
		}
		fmt.Fprintf(w, "  %s%-*s %-8s %9s%s\n", strings.Repeat("  ", depth), 52-2*depth, s.Name(), s.SpanKind(),
			s.EndTime().Sub(s.StartTime()).Round(time.Microsecond), remote)
		n := 1
		kids := children[s.SpanContext().SpanID()]
		slices.SortFunc(kids, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
		for _, k := range kids {
			n += walk(k, depth+1)
		}
		return n
	}
	if n := walk(root, 0); n < 6 {
		return fmt.Errorf("the round trip's trace has %d spans, want 6 (device, request, send, process, send reply, deliver)", n)
	}
	return nil
}
