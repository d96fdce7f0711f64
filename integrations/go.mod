module github.com/resilience-go/resilience/integrations

go 1.26.0

replace github.com/resilience-go/resilience => ../

require (
	github.com/resilience-go/resilience v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
