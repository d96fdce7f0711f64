module github.com/resilience-go/resilience

go 1.26

require github.com/cenkalti/backoff/v4 v4.3.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
