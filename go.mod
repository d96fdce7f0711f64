module github.com/resilience-go/resilience

go 1.25.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	golang.org/x/time v0.15.0
)
