package report

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// Point is one (x, y) of a series.
type Point struct{ X, Y float64 }

// Series is one line of a panel.
type Series struct {
	Name   string
	Color  string
	Dashed bool
	Points []Point
}

// Panel is one chart: axes, and lines on them.
type Panel struct {
	Title, XLabel, YLabel string
	// LogY draws the y axis in powers of ten (for latencies).
	LogY   bool
	Series []Series
	// Marks are labelled horizontal lines (targets, thresholds).
	Marks []Mark
}

// Mark is a labelled horizontal line at Y.
type Mark struct {
	Y     float64
	Label string
}

const (
	panelW, panelH = 440, 320
	marginL        = 64
	marginR        = 16
	marginT        = 34
	marginB        = 74
)

// SVG draws the panels side by side under a title, with a legend under
// each. Points with a NaN or (on a log axis) non-positive y are left out.
func SVG(title string, panels []Panel) []byte {
	w := panelW * len(panels)
	h := panelH + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" text-anchor="middle">%s</text>`+"\n", w/2, html.EscapeString(title))
	for i, p := range panels {
		fmt.Fprintf(&b, `<g transform="translate(%d,30)">`+"\n", i*panelW)
		drawPanel(&b, p)
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

func drawPanel(b *strings.Builder, p Panel) {
	x0, x1 := marginL, panelW-marginR
	y0, y1 := panelH-marginB, marginT // pixel rows: bottom, top
	var xs, ys []float64
	for _, m := range p.Marks {
		if usable(m.Y, p.LogY) {
			ys = append(ys, m.Y)
		}
	}
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if usable(pt.Y, p.LogY) {
				xs = append(xs, pt.X)
				ys = append(ys, pt.Y)
			}
		}
	}
	fmt.Fprintf(b, `<text x="%d" y="16" font-size="12" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, html.EscapeString(p.Title))
	if len(xs) == 0 || len(ys) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">no data</text>`+"\n", (x0+x1)/2, (y0+y1)/2)
		return
	}
	xmin, xmax := slices.Min(xs), slices.Max(xs)
	if xmin == xmax {
		xmin, xmax = xmin-1, xmax+1
	}
	xmin = math.Min(xmin, 0)
	xt := NiceTicks(xmin, xmax, 6)
	xmax = math.Max(xmax, xt[len(xt)-1])
	var yt []float64
	var ylo, yhi float64
	if p.LogY {
		ylo = math.Pow(10, math.Floor(math.Log10(slices.Min(ys))))
		yhi = math.Pow(10, math.Ceil(math.Log10(slices.Max(ys))))
		if yhi <= ylo {
			yhi = ylo * 10
		}
		for v := ylo; v <= yhi*1.0001; v *= 10 {
			yt = append(yt, v)
		}
	} else {
		yt = NiceTicks(0, slices.Max(ys), 5)
		ylo, yhi = 0, yt[len(yt)-1]
	}
	px := func(x float64) float64 { return float64(x0) + (x-xmin)/(xmax-xmin)*float64(x1-x0) }
	py := func(y float64) float64 {
		f := (y - ylo) / (yhi - ylo)
		if p.LogY {
			f = (math.Log10(y) - math.Log10(ylo)) / (math.Log10(yhi) - math.Log10(ylo))
		}
		return float64(y0) - f*float64(y0-y1)
	}
	// Grid and ticks.
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-5, y+4, tick(v))
	}
	for _, v := range xt {
		x := px(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`+"\n", x, y0, x, y0+4)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y0+16, tick(v))
	}
	fmt.Fprintf(b, `<polyline points="%d,%d %d,%d %d,%d" fill="none" stroke="#333"/>`+"\n", x0, y1, x0, y0, x1, y0)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, y0+32, html.EscapeString(p.XLabel))
	fmt.Fprintf(b, `<text transform="translate(14,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", (y0+y1)/2, html.EscapeString(p.YLabel))
	for _, m := range p.Marks {
		if !usable(m.Y, p.LogY) {
			continue
		}
		y := py(m.Y)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c33" stroke-dasharray="2,3"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#c33">%s</text>`+"\n", x1, y-3, html.EscapeString(m.Label))
	}
	// Lines and markers.
	for _, s := range p.Series {
		var pts []string
		for _, pt := range s.Points {
			if usable(pt.Y, p.LogY) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt.X), py(pt.Y)))
			}
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.Color, dash)
		if !s.Dashed {
			for _, pt := range pts {
				x, y, _ := strings.Cut(pt, ",")
				fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, s.Color)
			}
		}
	}
	// Legend under the axis label.
	lx := x0
	for _, s := range p.Series {
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, y0+50, lx+18, y0+50, s.Color, dash)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", lx+22, y0+54, html.EscapeString(s.Name))
		lx += 30 + 6*len(s.Name)
	}
}

// tick formats an axis value: whole numbers plainly (k from ten
// thousand), others as Num does.
func tick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e4 {
		return fmt.Sprintf("%.0f", v)
	}
	return Num(v)
}

func usable(y float64, logY bool) bool {
	return !math.IsNaN(y) && !math.IsInf(y, 0) && (!logY || y > 0)
}

// NiceTicks returns about n evenly spaced round values (steps of 1, 2 or 5
// times a power of ten) from at or below lo to at or above hi.
func NiceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(max(n, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	start := math.Floor(lo/step) * step
	var out []float64
	for v := start; v < hi+step*0.999; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}
