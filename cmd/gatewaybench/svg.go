package main

import (
	"bytes"
	"fmt"
	"math"
)

// memorySVG draws the gateway's memory per idle connection for each
// connection count: heap+stack growth and RSS growth, as grouped bars,
// with the 8 KiB target as a line.
func memorySVG(rows []result) []byte {
	const (
		w, h                   = 640, 360
		left, right, top, bott = 60, 20, 50, 60
		target                 = 8.0
	)
	top2 := target
	for _, r := range rows {
		top2 = max(top2, r.HeapPerConnKiB, r.RSSPerConnKiB)
	}
	ymax := math.Ceil(top2/2)*2 + 2
	plotW, plotH := float64(w-left-right), float64(h-top-bott)
	y := func(v float64) float64 { return float64(top) + plotH*(1-v/ymax) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">tcphub: server memory per idle authenticated connection</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#555">gatewaybench, %s Kafka; lower is better</text>`+"\n", left, rows[0].Broker)
	for v := 0.0; v <= ymax+1e-9; v += 2 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">KiB per connection</text>`+"\n",
		float64(top)+plotH/2, float64(top)+plotH/2)
	group := plotW / float64(len(rows))
	bar := min(60, group/3)
	for i, r := range rows {
		x0 := float64(left) + group*float64(i) + group/2 - bar
		for j, v := range []float64{r.HeapPerConnKiB, r.RSSPerConnKiB} {
			color := []string{"#3b6fb6", "#e08a2c"}[j]
			x := x0 + float64(j)*bar
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y(max(v, 0)), bar-4, y(0)-y(max(v, 0)), color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>`+"\n", x+(bar-4)/2, y(max(v, 0))-4, v)
		}
		label := fmt.Sprintf("%dk connections", r.Conns/1000)
		if r.Instances > 1 {
			label += fmt.Sprintf(" (%d gateways)", r.Instances)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x0+bar, h-bott+18, label)
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="6 4"/>`+"\n", left, w-right, y(target), y(target))
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#c33">target 8 KiB</text>`+"\n", w-right-4, y(target)-5)
	ly := h - 18
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="#3b6fb6"/><text x="%d" y="%d">Go heap + stacks in use</text>`+"\n", left, ly-10, left+18, ly)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="#e08a2c"/><text x="%d" y="%d">resident set (RSS)</text>`+"\n", left+200, ly-10, left+218, ly)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
