// A program outside the repository that uses the core and metrics: a
// service on Prometheus. .ci/modules copies this folder to a temporary
// directory, adds the requirements at the version being released, and
// checks that its module graph holds no OpenTelemetry module.
module example.com/prometheusconsumer

go 1.26.0
