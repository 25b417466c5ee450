package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one line of the plot: (seconds, converged users) points.
type series struct {
	Name   string
	Color  string
	Dashed bool
	Points [][2]float64
}

// dash is the stroke-dasharray attribute of a dashed series.
func (s series) dash() string {
	if s.Dashed {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// niceStep returns a round tick step (1, 2 or 5 × 10^k) giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// renderSVG draws converged users over time for each series, with axes, ticks and a legend.
// It needs no library: one <polyline> per series.
func renderSVG(title string, xLabel, yLabel string, all []series) string {
	const (
		w, h                 = 860, 500
		left, right, top, bt = 70, 20, 50, 60
	)
	xmax, ymax := 0.0, 0.0
	for _, s := range all {
		for _, p := range s.Points {
			xmax = math.Max(xmax, p[0])
			ymax = math.Max(ymax, p[1])
		}
	}
	if xmax <= 0 {
		xmax = 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	xmax *= 1.05
	ymax *= 1.05
	pw, ph := float64(w-left-right), float64(h-top-bt)
	x := func(v float64) float64 { return float64(left) + v/xmax*pw }
	y := func(v float64) float64 { return float64(top) + ph - v/ymax*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" `+
		`font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and ticks.
	xs := niceStep(xmax, 8)
	for v := 0.0; v <= xmax; v += xs {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x(v), top, x(v), y(0))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(v), y(0)+18, fmtTick(v))
	}
	ys := niceStep(ymax, 6)
	for v := 0.0; v <= ymax; v += ys {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, y(v), x(xmax), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, fmtTick(v))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, y(0), x(xmax), y(0))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", left, top, left, y(0))
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(xmax/2), h-15, html.EscapeString(xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
		y(ymax/2), y(ymax/2), html.EscapeString(yLabel))
	// Series, then the legend in the lower right corner, where the curves (rising from the
	// origin) leave room, on white so that a line passing under it does not hide it.
	longest := 0
	for _, s := range all {
		longest = max(longest, len([]rune(s.Name)))
	}
	legendW, legendH := 50+7*longest, 18*len(all)+10
	lx, ly0 := int(x(xmax))-legendW-10, int(y(0))-legendH-10
	for _, s := range all {
		var pts strings.Builder
		for j, p := range s.Points {
			if j > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", x(p[0]), y(p[1]))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.Color, s.dash(), pts.String())
	}
	if len(all) > 0 {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="white" fill-opacity="0.9" stroke="#cccccc"/>`+"\n",
			lx, ly0, legendW, legendH)
	}
	for i, s := range all {
		ly := ly0 + 14 + 18*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx+8, ly, lx+36, ly, s.Color, s.dash())
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", lx+42, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", round(v, 2))
}
