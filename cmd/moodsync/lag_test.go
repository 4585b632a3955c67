package main

import (
	"testing"
	"time"
)

func TestHeadProbeLag(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &headProbe{}
	if _, _, _, known := p.lag(5, t0); known {
		t.Fatal("lag known before any live event")
	}
	p.saw(10, t0)
	p.saw(11, t0.Add(time.Second))
	p.saw(11, t0.Add(2*time.Second)) // seen again: ignored
	p.saw(12, t0.Add(3*time.Second))

	head, behind, secs, known := p.lag(9, t0.Add(4*time.Second))
	if !known || head != 12 || behind != 3 || secs != 4 {
		t.Errorf("lag(9) = %d %d %v %v; want head 12, 3 behind, 4s", head, behind, secs, known)
	}
	head, behind, secs, _ = p.lag(11, t0.Add(4*time.Second))
	if head != 12 || behind != 1 || secs != 1 {
		t.Errorf("lag(11) = %d %d %v; want head 12, 1 behind, 1s", head, behind, secs)
	}
	// Caught up (or ahead of the probe): no lag.
	head, behind, secs, _ = p.lag(13, t0.Add(5*time.Second))
	if head != 13 || behind != 0 || secs != 0 {
		t.Errorf("lag(13) = %d %d %v; want 13 0 0", head, behind, secs)
	}
}

func TestHeadProbeKeepsTheNewestWhenFull(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &headProbe{}
	for i := int64(1); i <= maxPending+10; i++ {
		p.saw(i, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(p.pending) != maxPending {
		t.Fatalf("%d arrivals kept, want %d", len(p.pending), maxPending)
	}
	// Past every kept arrival but the last: the newest stands for the rest.
	_, behind, secs, _ := p.lag(maxPending+5, t0.Add(time.Duration(maxPending+10)*time.Millisecond))
	if behind != 5 || secs != 0 {
		t.Errorf("behind %d, %vs; want 5 behind, aged from the newest arrival (0s)", behind, secs)
	}
}
