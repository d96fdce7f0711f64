// A program outside the repository that uses the core, metrics and an
// integration. .ci/modules copies this folder to a temporary directory,
// adds the requirements at the version being released, and builds it
// against a module proxy of this commit.
module example.com/consumer

go 1.26.0
