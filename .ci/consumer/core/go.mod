// A program outside the repository that uses the core alone. .ci/modules
// copies this folder to a temporary directory, adds the requirement at the
// version being released, and checks what its module graph and go.sum
// hold.
module example.com/coreconsumer

go 1.25.0
