package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkBreakerClosed/lib=resilience/goroutines=1-2   	 1000	        20.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/lib=resilience/goroutines=1-2   	 1000	        30.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/lib=resilience/goroutines=1-2   	 1000	        22.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkBreakerClosed/lib=failsafe-go/goroutines=1-2  	 1000	       500.0 ns/op	     384 B/op	      14 allocs/op
BenchmarkBreakerClosed/lib=failsafe-go/goroutines=1-2  	 1000	       440.0 ns/op	     384 B/op	      14 allocs/op
BenchmarkBreakerClosed/lib=go-resiliency/goroutines=1-2	 1000	        11.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkOther-2	 1000	        11.0 ns/op
PASS
`

func TestReport(t *testing.T) {
	rows, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	write(&out, rows)
	for _, want := range []string{
		"| BreakerClosed/goroutines=1 | resilience | 22.0 | 0 | 0 | — |",           // median of 20, 30, 22
		"| BreakerClosed/goroutines=1 | failsafe-go | 470.0 | 384 | 14 | 1/21.4 |", // mean of the middle two
		"| BreakerClosed/goroutines=1 | go-resiliency | 11.0 | 0 | 0 | 2.0× (ours slower) |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Other") {
		t.Errorf("a benchmark without lib= made a row:\n%s", out.String())
	}
}
