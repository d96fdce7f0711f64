package resilience

// StopOpenTimer stops the timer that would move an open b to half-open,
// so that a test can look at b past its open timeout with the move not
// yet made, however the goroutines are scheduled.
func StopOpenTimer(b *Breaker) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
	}
}
