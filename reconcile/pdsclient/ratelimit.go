package pdsclient

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// A PDS limits the writes of each account (the reference PDS: points per
// hour and per day) and answers 429 with the moment the limit resets in
// ratelimit-reset (Unix seconds) and, from some proxies, retry-after. The
// client remembers that moment per DID and refuses that account's calls
// until then without contacting the PDS: a rate-limited account is never
// retried sooner, and other accounts are not affected.

// DefaultRateLimitWait is how long an account is left alone after a 429
// that names no reset.
const DefaultRateLimitWait = 10 * time.Second

// MaxRateLimitWait bounds the wait a 429 may ask for, so a bogus header
// cannot silence an account for good.
const MaxRateLimitWait = time.Hour

// maxLimited bounds the rate-limited DIDs remembered; expired ones are
// dropped first.
const maxLimited = 100_000

// rateNote carries the reset a 429 named from the transport to the call
// that made the request (through the request's context).
type rateNote struct {
	mu    sync.Mutex
	until time.Time
}

type rateNoteKey struct{}

// rateTransport reads the reset of 429 answers into the request's note.
type rateTransport struct{ base http.RoundTripper }

func (t rateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		if note, ok := r.Context().Value(rateNoteKey{}).(*rateNote); ok {
			if until, ok := resetOf(resp.Header, time.Now()); ok {
				note.mu.Lock()
				note.until = until
				note.mu.Unlock()
			}
		}
	}
	return resp, err
}

// resetOf is when a 429's limit resets: the later of ratelimit-reset
// (Unix seconds) and retry-after (seconds, or an HTTP date).
func resetOf(h http.Header, now time.Time) (time.Time, bool) {
	var until time.Time
	if v := h.Get("Ratelimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			until = time.Unix(s, 0)
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		var t time.Time
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			t = now.Add(time.Duration(s) * time.Second)
		} else if d, err := http.ParseTime(v); err == nil {
			t = d
		}
		if t.After(until) {
			until = t
		}
	}
	return until, !until.IsZero()
}

// limits are the rate-limited accounts and when each may be tried again.
type limits struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (l *limits) get(did string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.until[did]
	if ok && !now.Before(u) {
		delete(l.until, did)
		return time.Time{}, false
	}
	return u, ok
}

func (l *limits) set(did string, until time.Time, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.until == nil {
		l.until = map[string]time.Time{}
	}
	if len(l.until) >= maxLimited {
		for d, u := range l.until {
			if !now.Before(u) {
				delete(l.until, d)
			}
		}
		if len(l.until) >= maxLimited {
			return // the PDS will say 429 again
		}
	}
	if until.After(l.until[did]) {
		l.until[did] = until
	}
}

// errNotTried is the cause of the error a call refused locally returns.
var errNotTried = errors.New("not sent: the account's rate limit has not reset")

// RateLimitedUntil reports until when did's calls are refused without
// contacting the PDS (false: they are not).
func (c *Client) RateLimitedUntil(did string) (time.Time, bool) {
	return c.limits.get(did, time.Now())
}

// checkLimit refuses a call for did while its rate limit has not reset.
func (c *Client) checkLimit(did string) error {
	if until, ok := c.limits.get(did, time.Now()); ok {
		return model.RateLimited(did, until, errNotTried)
	}
	return nil
}

// noteLimit turns a 429 answered for did into a rate-limited error and
// remembers the reset; any other error is returned as it is.
func (c *Client) noteLimit(did string, note *rateNote, err error) error {
	if err == nil || apiErrorStatus(err) != http.StatusTooManyRequests {
		return err
	}
	now := time.Now()
	note.mu.Lock()
	until := note.until
	note.mu.Unlock()
	switch {
	case until.IsZero() || !until.After(now):
		until = now.Add(DefaultRateLimitWait)
	case until.Sub(now) > MaxRateLimitWait:
		until = now.Add(MaxRateLimitWait)
	}
	c.limits.set(did, until, now)
	if c.OnRateLimited != nil {
		c.OnRateLimited(did)
	}
	c.log.Warn("PDS rate limit reached: the account is left alone until it resets", "did", did, "until", until.UTC())
	return model.RateLimited(did, until, err)
}

func withRateNote(ctx context.Context) (context.Context, *rateNote) {
	note := &rateNote{}
	return context.WithValue(ctx, rateNoteKey{}, note), note
}
