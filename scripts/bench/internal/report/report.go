// Package report renders the bench's results: Markdown tables and a small
// SVG line chart, with no dependency beyond the standard library.
package report

import (
	"fmt"
	"math"
	"strings"
)

// Table is a Markdown table.
type Table struct {
	Header []string
	// Right lists, per column, whether it is right-aligned (numbers).
	Right []bool
	Rows  [][]string
}

// Markdown renders the table, its columns padded so that it also reads
// well as plain text.
func (t Table) Markdown() string {
	width := make([]int, len(t.Header))
	for i, h := range t.Header {
		width[i] = max(len([]rune(h)), 3)
	}
	for _, r := range t.Rows {
		for i := range width {
			if i < len(r) {
				width[i] = max(width[i], len([]rune(r[i])))
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range width {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if t.right(i) {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	line(t.Header)
	b.WriteString("|")
	for i := range width {
		if t.right(i) {
			b.WriteString(" " + strings.Repeat("-", width[i]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", width[i]) + " |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		line(r)
	}
	return b.String()
}

func (t Table) right(i int) bool { return i < len(t.Right) && t.Right[i] }

// Num formats a figure with about three significant digits, and k/M
// suffixes from ten thousand on: 0.123, 1.23, 12.3, 123, 1234, 12.3k, 1.23M.
// NaN and infinities print as "-".
func Num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(fmt.Sprintf("%.3g", v/1e6)) + "M"
	case a >= 1e4:
		return trim(fmt.Sprintf("%.3g", v/1e3)) + "k"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a == 0:
		return "0"
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func trim(s string) string {
	if strings.ContainsAny(s, "e") {
		return s
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Ratio formats a/b with two decimals ("-" when either is missing or b is
// zero).
func Ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
