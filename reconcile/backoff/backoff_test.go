package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayGrowsWithinBounds(t *testing.T) {
	base, max := 100*time.Millisecond, time.Second
	for n := 1; n <= 10; n++ {
		want := base << (n - 1)
		if want > max {
			want = max
		}
		for range 100 {
			d := Delay(n, base, max)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
	b := New(base, max)
	for range 20 {
		if d := b.Next(); d > max {
			t.Fatalf("Next = %v over max", d)
		}
	}
	b.Reset()
	if d := b.Next(); d > base {
		t.Fatalf("after Reset, Next = %v, want at most %v", d, base)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported the hour passed on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1ms did not pass")
	}
}
