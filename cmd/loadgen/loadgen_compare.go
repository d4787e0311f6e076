package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// `loadgen compare DIR` prints the A/B table of `make loadgen-ab`: DIR holds one
// subdirectory per side (named after its commit), each with the JSON reports of its runs
// (`loadgen -json`). Every figure is shown per run and as the median of the runs,
// with the change of the second side against the first.

type abSide struct {
	name string
	runs []*loadgenReport
}

func runLoadgenCompare(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	first := fs.String("base", "", "the side the other is compared with (a subdirectory name; default: the first one listed by -order)")
	order := fs.String("order", "", "comma-separated subdirectory names, in the order to show them (default: alphabetical)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("want one directory: loadgen compare [-base NAME] DIR")}
	}
	sides, err := readABSides(fs.Arg(0), splitList(*order))
	if err != nil {
		return err
	}
	if *first != "" {
		i := slices.IndexFunc(sides, func(s abSide) bool { return s.name == *first })
		if i < 0 {
			return usageError{fmt.Errorf("-base %q is not a subdirectory of %s", *first, fs.Arg(0))}
		}
		sides[0], sides[i] = sides[i], sides[0]
	}
	printAB(stdout, sides)
	return nil
}

func readABSides(dir string, order []string) ([]abSide, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var sides []abSide
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.json"))
		sort.Strings(files)
		s := abSide{name: e.Name()}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			var r loadgenReport
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("%s: not a loadgen JSON report: %w", f, err)
			}
			s.runs = append(s.runs, &r)
		}
		if len(s.runs) > 0 {
			sides = append(sides, s)
		}
	}
	if len(sides) < 2 {
		return nil, fmt.Errorf("%s: want two subdirectories of JSON reports, found %d", dir, len(sides))
	}
	if len(order) > 0 {
		rank := func(name string) int {
			if i := slices.Index(order, name); i >= 0 {
				return i
			}
			return len(order)
		}
		slices.SortStableFunc(sides, func(a, b abSide) int { return rank(a.name) - rank(b.name) })
	}
	return sides, nil
}

// abFigure is one row of the table: how to read it off a report, and how to show it.
type abFigure struct {
	name  string
	value func(*loadgenReport) float64
	unit  string // "ms", "/s", "MB", ""
}

var abFigures = []abFigure{
	{"e2e p50", func(r *loadgenReport) float64 { return ms(r.E2E.P50) }, "ms"},
	{"e2e p95", func(r *loadgenReport) float64 { return ms(r.E2E.P95) }, "ms"},
	{"e2e p99", func(r *loadgenReport) float64 { return ms(r.E2E.P99) }, "ms"},
	{"ack p50", func(r *loadgenReport) float64 { return ms(r.Ack.P50) }, "ms"},
	{"ack p99", func(r *loadgenReport) float64 { return ms(r.Ack.P99) }, "ms"},
	{"sustained", func(r *loadgenReport) float64 { return r.Sustained }, "/s"},
	{"lost+dup", func(r *loadgenReport) float64 { return float64(r.Total.Lost + r.Total.Duplicated) }, ""},
	{"refused", func(r *loadgenReport) float64 { return float64(r.Total.Rejected) }, ""},
	{"RSS peak", func(r *loadgenReport) float64 { return mb(r.Memory, true) }, "MB"},
	{"RSS steady", func(r *loadgenReport) float64 { return mb(r.Memory, false) }, "MB"},
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mb(m *loadgenMemory, peak bool) float64 {
	switch {
	case m == nil || m.Samples == 0:
		return -1
	case peak:
		return m.PeakBytes / 1e6
	}
	return m.SteadyBytes / 1e6
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtFigure(v float64, unit string) string {
	switch {
	case v < 0:
		return "-"
	case unit == "ms":
		return fmt.Sprintf("%.1f ms", v)
	case unit == "/s":
		return fmt.Sprintf("%.0f/s", v)
	case unit == "MB":
		return fmt.Sprintf("%.0f MB", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func printAB(w io.Writer, sides []abSide) {
	r0 := sides[0].runs[0]
	fmt.Fprintf(w, "A/B at %g comments/s, %gs measured after %gs warmup; runs interleaved; figures: median of the runs [each run]\n",
		r0.TargetRate, r0.Duration, r0.Warmup)
	head := []string{"figure"}
	for i, s := range sides {
		h := fmt.Sprintf("%s (%d runs)", s.name, len(s.runs))
		if i > 0 {
			head = append(head, h, "change")
		} else {
			head = append(head, h)
		}
	}
	rows := [][]string{head}
	for _, f := range abFigures {
		row := []string{f.name}
		var base float64
		for i, s := range sides {
			vals := make([]float64, len(s.runs))
			each := make([]string, len(s.runs))
			for j, r := range s.runs {
				vals[j] = f.value(r)
				each[j] = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(fmtFigure(vals[j], f.unit), " ms"), " MB"), "/s")
			}
			m := median(vals)
			row = append(row, fmt.Sprintf("%s [%s]", fmtFigure(m, f.unit), strings.Join(each, ", ")))
			if i == 0 {
				base = m
				continue
			}
			change := "-"
			if base > 0 && m >= 0 && f.unit != "" {
				change = fmt.Sprintf("%+.1f%%", 100*(m-base)/base)
			}
			row = append(row, change)
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(head))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for k, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = c + strings.Repeat(" ", widths[i]-len([]rune(c)))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		if k == 0 {
			seps := make([]string, len(r))
			for i := range r {
				seps[i] = strings.Repeat("-", widths[i])
			}
			fmt.Fprintf(w, "|-%s-|\n", strings.Join(seps, "-|-"))
		}
	}
}
