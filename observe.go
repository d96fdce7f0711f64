package resilience

// Each stage's observer type lives with the stage (BreakerObserver in
// breaker.go, and so on). Observers are structs of optional functions, as
// net/http/httptrace's ClientTrace is: any may be nil, each may be called
// from many goroutines at once, and none is called with a lock held. The
// helpers below join two observers into one.

// join0, join1 and join2 return a function calling f then g, either of
// which may be nil.
func join0(f, g func()) func() {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func() { f(); g() }
}

func join1[A any](f, g func(A)) func(A) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A) { f(a); g(a) }
}

func join2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

// or2 returns f if it is not nil, else g.
func or2[F any](f, g F) F {
	if isNil(f) {
		return g
	}
	return f
}
