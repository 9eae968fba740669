package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// summary is the median of one implementation's rounds in one scenario.
type summary struct {
	Broker       string  `json:"broker"`
	Scenario     string  `json:"scenario"`
	Impl         string  `json:"impl"`
	Size         int     `json:"size"`
	Partitions   int     `json:"partitions"`
	Msgs         int64   `json:"msgs"`
	Bytes        int64   `json:"bytes"`
	Seconds      float64 `json:"seconds"`
	MsgsPerS     float64 `json:"msgs_per_s"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	RSSMiB       float64 `json:"rss_mib"`
	AllocsPerMsg float64 `json:"allocs_per_msg"`
	AllocBPerMsg float64 `json:"alloc_bytes_per_msg"`
	CPUusPerMsg  float64 `json:"cpu_us_per_msg"`
	Rounds       int     `json:"rounds"`
	Errors       int64   `json:"errors"`
	VsSarama     float64 `json:"vs_sarama"`
	VsFranzGo    float64 `json:"vs_franz_go"`
	// Paired compares this implementation with a baseline round by round:
	// the median of its per-round ratios (the two ran one after the other
	// in each round), which a drift in the machine's speed over the run
	// moves less than a ratio of medians. Baselines: sarama, franz-go, and
	// name-notel for an instrumented implementation, name for its
	// A/A control name-again.
	Paired  map[string]pairedRatio `json:"paired,omitempty"`
	LoadAvg string                 `json:"load_avg"`
}

// pairedRatio is the median of per-round ratios to a baseline.
type pairedRatio struct {
	MsgsPerS    float64 `json:"msgs_per_s"`
	CPUusPerMsg float64 `json:"cpu_us_per_msg"`
}

// paired returns the median per-round ratios of a to b over the rounds
// both ran.
func paired(a, b []roundResult) pairedRatio {
	var thr, cpu []float64
	for i := range min(len(a), len(b)) {
		if b[i].rate() > 0 {
			thr = append(thr, a[i].rate()/b[i].rate())
		}
		if b[i].cpuUsPerMsg > 0 {
			cpu = append(cpu, a[i].cpuUsPerMsg/b[i].cpuUsPerMsg)
		}
	}
	return pairedRatio{MsgsPerS: round3(median(thr)), CPUusPerMsg: round3(median(cpu))}
}

// summarise takes the median throughput of the rounds; msgs, bytes and
// seconds come from the median round, the other figures are medians of
// the per-round values.
func summarise(rs []roundResult) summary {
	rates := make([]float64, len(rs))
	var p50s, p99s, rss, allocs, allocB, cpu []float64
	var errs int64
	for i, r := range rs {
		rates[i] = r.rate()
		if len(r.lat) > 0 {
			p50s = append(p50s, ms(percentile(r.lat, 50)))
			p99s = append(p99s, ms(percentile(r.lat, 99)))
		}
		rss = append(rss, r.rssMiB)
		allocs = append(allocs, r.allocsPerMsg)
		allocB = append(allocB, r.allocBytesMsg)
		cpu = append(cpu, r.cpuUsPerMsg)
		errs += r.errors
	}
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmpFloat(rates[a], rates[b]) })
	mid := rs[order[(len(rs)-1)/2]]
	return summary{
		Msgs:         mid.msgs,
		Bytes:        mid.bytes,
		Seconds:      round3(mid.seconds),
		MsgsPerS:     math.Round(median(rates)),
		P50ms:        round3(median(p50s)),
		P99ms:        round3(median(p99s)),
		RSSMiB:       round1(median(rss)),
		AllocsPerMsg: round1(median(allocs)),
		AllocBPerMsg: math.Round(median(allocB)),
		CPUusPerMsg:  round3(median(cpu)),
		Rounds:       len(rs),
		Errors:       errs,
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func (r *runner) report(scenario string, size int, order []string, res map[string][]roundResult) {
	var ss []summary
	for _, name := range order {
		s := summarise(res[name])
		s.Broker, s.Scenario, s.Impl, s.Size, s.Partitions, s.LoadAvg = r.b.kind, scenario, name, size, r.o.partitions, loadAvg()
		ss = append(ss, s)
	}
	base := func(name string) float64 {
		for _, s := range ss {
			if s.Impl == name {
				return s.MsgsPerS
			}
		}
		return 0
	}
	sarama, franz := base("sarama"), base("franz-go")
	for i := range ss {
		if sarama > 0 {
			ss[i].VsSarama = math.Round(ss[i].MsgsPerS/sarama*100) / 100
		}
		if franz > 0 {
			ss[i].VsFranzGo = math.Round(ss[i].MsgsPerS/franz*100) / 100
		}
	}
	for i := range ss {
		name := ss[i].Impl
		for _, b := range []string{"sarama", "franz-go", name + "-notel", strings.TrimSuffix(name, againSuffix)} {
			if b == name || len(res[b]) == 0 {
				continue
			}
			if ss[i].Paired == nil {
				ss[i].Paired = map[string]pairedRatio{}
			}
			ss[i].Paired[b] = paired(res[name], res[b])
		}
	}
	r.summaries = append(r.summaries, ss...)
	printTable(r.tableOut, ss)
	if r.o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		for _, s := range ss {
			_ = enc.Encode(s)
		}
	}
}

func printTable(f *os.File, ss []summary) {
	if len(ss) == 0 {
		return
	}
	fmt.Fprintf(f, "%s (%s broker, %d partitions, %d-byte values, load %s)\n", ss[0].Scenario, ss[0].Broker, ss[0].Partitions, ss[0].Size, ss[0].LoadAvg)
	tw := tabwriter.NewWriter(f, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tmsgs\tMB\ts\tmsgs/s\tvs sarama\tvs franz-go\tp50 ms\tp99 ms\tCPU µs/msg\tRSS MiB\tallocs/msg\tB/msg\t")
	for _, s := range ss {
		errs := ""
		if s.Errors > 0 {
			errs = fmt.Sprintf(" (%d errors)", s.Errors)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.0f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%.1f\t%.1f\t%.0f\t%s\n",
			s.Impl, s.Msgs, float64(s.Bytes)/1e6, s.Seconds, s.MsgsPerS, s.VsSarama, s.VsFranzGo,
			optMs(s.P50ms), optMs(s.P99ms), s.CPUusPerMsg, s.RSSMiB, s.AllocsPerMsg, s.AllocBPerMsg, errs)
	}
	_ = tw.Flush()
	fmt.Fprintln(f)
}

func optMs(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// Chart geometry, in SVG user units.
const (
	svgWidth    = 860
	svgLabelW   = 150
	svgBarMaxW  = 560
	svgBarH     = 16
	svgBarGap   = 4
	svgGroupGap = 30
	svgTop      = 50
)

// Raw clients in neutral colours, kafkahub's variants in shades of red
// (Sarama engine) and orange (franz-go engine).
var implColours = map[string]string{
	"sarama":                "#8c8c8c",
	"sarama-sync":           "#bdbdbd",
	"franz-go":              "#4c78a8",
	"franz-sync":            "#9ecae9",
	"kafkahub-franz":        "#f58518",
	"kafkahub-franz-output": "#f58518",
	"kafkahub-franz-send":   "#ffbf79",
	"kafkahub-franz-1w":     "#ffbf79",
	"kafkahub-franz-Nw":     "#f58518",
	"kafkahub-franz-batch":  "#b35806",
	"kafkahub":              "#e45756",
	"kafkahub-output":       "#e45756",
	"kafkahub-send":         "#f28e8c",
	"kafkahub-1w":           "#f28e8c",
	"kafkahub-Nw":           "#e45756",
	"kafkahub-batch":        "#a02c2b",
}

func implColour(name string) string {
	if c, ok := implColours[name]; ok {
		return c
	}
	return "#e45756"
}

// renderSVG draws one panel of horizontal bars per throughput scenario
// (latency scenarios run at a fixed rate and are left out), each panel
// scaled to its own fastest implementation.
func renderSVG(title string, ss []summary) string {
	var groups [][]summary
	for _, s := range ss {
		if strings.HasPrefix(s.Scenario, "latency") {
			continue
		}
		if n := len(groups); n > 0 && groups[n-1][0].Scenario == s.Scenario {
			groups[n-1] = append(groups[n-1], s)
		} else {
			groups = append(groups, []summary{s})
		}
	}
	// Each panel: its title (14), a gap (4), the bars, and the space
	// before the next panel (svgGroupGap-14); then the footer line.
	height := svgTop + 24
	for _, g := range groups {
		height += 4 + len(g)*(svgBarH+svgBarGap) + svgGroupGap
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#555">records per second; bars scaled per scenario; ratio to raw Sarama in brackets</text>`+"\n")
	y := svgTop
	for _, g := range groups {
		top := 0.0
		for _, s := range g {
			top = max(top, s.MsgsPerS)
		}
		y += 14
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s (%s)</text>`+"\n", y, html.EscapeString(g[0].Scenario), g[0].Broker)
		y += 4
		for _, s := range g {
			w := 0.0
			if top > 0 {
				w = s.MsgsPerS / top * svgBarMaxW
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLabelW-6, y+svgBarH-4, html.EscapeString(s.Impl))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", svgLabelW, y, w, svgBarH, implColour(s.Impl))
			label := humanRate(s.MsgsPerS)
			if s.VsSarama > 0 {
				label += fmt.Sprintf(" (%.2fx)", s.VsSarama)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(svgLabelW)+w+6, y+svgBarH-4, label)
			y += svgBarH + svgBarGap
		}
		y += svgGroupGap - 14
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#888" font-size="10">generated by go run ./cmd/bench on %s</text>`+"\n",
		height-8, time.Now().UTC().Format("2006-01-02"))
	b.WriteString("</svg>\n")
	return b.String()
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk/s", v/1e3)
	}
	return fmt.Sprintf("%.0f/s", v)
}

// chartFromJSON renders the chart from the -json output of earlier runs
// (one summary per line; other lines are skipped).
func chartFromJSON(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	var ss []summary
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s summary
		if json.Unmarshal(sc.Bytes(), &s) == nil && s.Scenario != "" {
			ss = append(ss, s)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(ss) == 0 {
		return fmt.Errorf("%s: no results", in)
	}
	title := fmt.Sprintf("Throughput, %s broker (median of %d rounds; %s)", ss[0].Broker, ss[0].Rounds, describeMachine())
	return os.WriteFile(out, []byte(renderSVG(title, ss)), 0o644)
}
