package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
)

// The cost of recording: the same chains with and without metrics, in one
// run. Goal: with metrics, the closed breaker within 2x of the breaker
// without, and no allocation. docs/PERFORMANCE.md has the figures.

func run(b *testing.B, p resilience.Policy[int], parallel bool) {
	ctx := context.Background()
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Do(ctx, ok)
			}
		})
		return
	}
	for b.Loop() {
		p.Do(ctx, ok)
	}
}

// bench runs the chain that build makes, bare and instrumented, on one
// goroutine and on all.
func bench(b *testing.B, build func() []resilience.Stage) {
	for _, instrumented := range []bool{false, true} {
		name := "metrics=off"
		if instrumented {
			name = "metrics=on"
		}
		for _, parallel := range []bool{false, true} {
			mode := "goroutines=1"
			if parallel {
				mode = "parallel"
			}
			b.Run(name+"/"+mode, func(b *testing.B) {
				stages := build()
				if instrumented {
					m := must(metrics.New(prometheus.NewRegistry()))
					if err := m.Instrument(stages...); err != nil {
						b.Fatal(err)
					}
				}
				run(b, resilience.For[int](stages...), parallel)
			})
		}
	}
}

func BenchmarkBreakerClosed(b *testing.B) {
	bench(b, func() []resilience.Stage {
		return []resilience.Stage{must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))}
	})
}

func BenchmarkBreakerOpen(b *testing.B) {
	bench(b, func() []resilience.Stage {
		br := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
		br.ForceOpen()
		return []resilience.Stage{br}
	})
}

func BenchmarkCompose(b *testing.B) {
	bench(b, func() []resilience.Stage {
		return []resilience.Stage{
			must(resilience.NewRetry(resilience.RetryConfig{Name: "r", MaxRetries: 3})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"})),
			must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "h", MaxConcurrent: 64})),
		}
	})
}
