package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress is a one-line progress bar on stderr, drawn only when stderr is
// a terminal: piped or captured output never gets control characters.
type progress struct {
	w     io.Writer
	label string
	total int

	mu    sync.Mutex
	done  int
	drawn time.Time
}

// newProgress returns a bar over total steps, or nil (a no-op) when w is
// not a terminal or there is nothing to do.
func newProgress(w io.Writer, label string, total int) *progress {
	f, ok := w.(*os.File)
	if !ok || total <= 0 || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	p := &progress{w: w, label: label, total: total}
	p.draw()
	return p
}

// Add counts n more steps done.
func (p *progress) Add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if time.Since(p.drawn) >= 100*time.Millisecond || p.done >= p.total {
		p.draw()
	}
}

// Finish erases the bar, leaving the line clean for what follows.
func (p *progress) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}

func (p *progress) draw() {
	const width = 30
	done := min(p.done, p.total)
	fill := width * done / p.total
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if fill > 0 && fill < width {
		bar = bar[:fill-1] + ">" + bar[fill:]
	}
	fmt.Fprintf(p.w, "\r%s [%s] %d/%d", p.label, bar, done, p.total)
	p.drawn = time.Now()
}
