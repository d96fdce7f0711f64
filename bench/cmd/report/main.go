// Command report turns the output of the comparison benchmarks into a
// markdown table: for each benchmark, the median ns/op, B/op and allocs/op
// of each library, and the ratio of ours to each.
//
//	go test -run '^$' -bench . -benchmem -count 6 . > bench.txt
//	go run ./cmd/report bench.txt
//
// Benchmarks name the library in a lib=NAME part; the library called
// resilience is ours.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// row is one benchmark of one library, with one value per run for each
// unit.
type row struct {
	bench, lib string
	values     map[string][]float64 // unit -> samples
}

var libPart = regexp.MustCompile(`/lib=([^/]+)`)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report BENCH_OUTPUT")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	write(os.Stdout, rows)
}

// parse reads benchmark lines: Name-P  N  v unit  v unit ...
func parse(r io.Reader) ([]*row, error) {
	var rows []*row
	index := map[string]*row{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		m := libPart.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		bench := strings.TrimPrefix(strings.Replace(name, m[0], "", 1), "Benchmark")
		key := bench + "\x00" + m[1]
		rw := index[key]
		if rw == nil {
			rw = &row{bench: bench, lib: m[1], values: map[string][]float64{}}
			index[key] = rw
			rows = append(rows, rw)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: value %q: %w", fields[0], fields[i], err)
			}
			rw.values[fields[i+1]] = append(rw.values[fields[i+1]], v)
		}
	}
	return rows, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// write prints one table row per benchmark and library, with the ratio of
// our median time to the library's.
func write(w io.Writer, rows []*row) {
	ours := map[string]float64{}
	for _, r := range rows {
		if r.lib == "resilience" {
			ours[r.bench] = median(r.values["ns/op"])
		}
	}
	slices.SortStableFunc(rows, func(a, b *row) int { return strings.Compare(a.bench, b.bench) })
	fmt.Fprintln(w, "| benchmark | library | ns/op | B/op | allocs/op | ours ÷ theirs |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, r := range rows {
		ns := median(r.values["ns/op"])
		ratio := "—"
		if o, ok := ours[r.bench]; ok && r.lib != "resilience" && ns > 0 {
			if o <= ns {
				ratio = fmt.Sprintf("1/%.1f", ns/o)
			} else {
				ratio = fmt.Sprintf("%.1f× (ours slower)", o/ns)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %s |\n", r.bench, r.lib, format(ns),
			median(r.values["B/op"]), median(r.values["allocs/op"]), ratio)
	}
}

func format(ns float64) string {
	switch {
	case ns >= 1000:
		return strconv.FormatFloat(ns, 'f', 0, 64)
	case ns >= 10:
		return strconv.FormatFloat(ns, 'f', 1, 64)
	}
	return strconv.FormatFloat(ns, 'f', 2, 64)
}
