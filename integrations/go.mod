module github.com/resilience-go/resilience/integrations

go 1.26.0

replace github.com/resilience-go/resilience => ../

require (
	github.com/redis/go-redis/v9 v9.23.0
	github.com/resilience-go/resilience v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
