package report

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

func TestNum(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.1234, "0.123"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"},
		{9999, "9999"}, {12345, "12.3k"}, {70000, "70k"}, {137000, "137k"}, {1234567, "1.23M"},
		{-12.34, "-12.3"}, {math.NaN(), "-"}, {math.Inf(1), "-"},
	}
	for _, tt := range tests {
		if got := Num(tt.v); got != tt.want {
			t.Errorf("Num(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if Ratio(1, 4) != "0.25" || Ratio(1, 0) != "-" || Ratio(math.NaN(), 1) != "-" {
		t.Fatal(Ratio(1, 4), Ratio(1, 0), Ratio(math.NaN(), 1))
	}
}

func TestMarkdown(t *testing.T) {
	tb := Table{Header: []string{"server", "µs"}, Right: []bool{false, true}, Rows: [][]string{{"ours", "1.5"}, {"reference", "12"}}}
	want := "| server    |  µs |\n" +
		"| --------- | --: |\n" +
		"| ours      | 1.5 |\n" +
		"| reference |  12 |\n"
	if got := tb.Markdown(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		n      int
		want   []float64
	}{
		{0, 200, 5, []float64{0, 50, 100, 150, 200}},
		{0, 70000, 5, []float64{0, 20000, 40000, 60000, 80000}},
		{0, 1, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
	}
	for _, tt := range tests {
		got := NiceTicks(tt.lo, tt.hi, tt.n)
		if len(got) != len(tt.want) {
			t.Fatalf("NiceTicks(%v, %v) = %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
		for i := range got {
			if math.Abs(got[i]-tt.want[i]) > 1e-9 {
				t.Fatalf("NiceTicks(%v, %v) = %v, want %v", tt.lo, tt.hi, got, tt.want)
			}
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	svg := SVG("fanout <1000> receivers", []Panel{
		{Title: "deliveries/s", XLabel: "offered msgs/s", YLabel: "deliveries/s", Series: []Series{
			{Name: "ours", Color: "#1f77b4", Points: []Point{{25, 25000}, {50, 50000}, {100, 98000}}},
			{Name: "offered", Color: "#999", Dashed: true, Points: []Point{{25, 25000}, {100, 100000}}},
		}},
		{Title: "p99", LogY: true, Marks: []Mark{{Y: 250, Label: "250 ms"}}, Series: []Series{
			{Name: "ref", Color: "#ff7f0e", Points: []Point{{25, 3}, {50, 0}, {100, math.NaN()}, {150, 2400}}},
		}},
		{Title: "empty"},
	})
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
	}
	s := string(svg)
	for _, want := range []string{"&lt;1000&gt;", "no data", "stroke-dasharray", ">10k<", ">250 ms<", ">20<", ">100<"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
