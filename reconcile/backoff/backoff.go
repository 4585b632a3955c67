// Package backoff is moodsync's one way to wait: exponential backoff with
// jitter between retries, and a sleep that ends with its context. Every
// retry loop (firehose reconnects, intents handed back to JetStream, the
// leader lease, the anti-entropy schedule) uses it, so none retries in a
// tight loop or forever without growing waits.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing waits: Base, doubling up to Max, each with jitter
// (a random part of up to half of it), so many clients restarted together
// do not retry in step.
type Backoff struct {
	Base, Max time.Duration
	n         int
}

// New returns a backoff from base up to max.
func New(base, max time.Duration) *Backoff {
	return &Backoff{Base: min(base, max), Max: max}
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := Delay(b.n+1, b.Base, b.Max)
	b.n++
	return d
}

// Reset starts again from Base (after a success).
func (b *Backoff) Reset() { b.n = 0 }

// Delay is the wait before attempt n (1-based): base doubled n-1 times, at
// most max, less up to half of it at random.
func Delay(n int, base, max time.Duration) time.Duration {
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - rand.N(d/2+1)
}

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
