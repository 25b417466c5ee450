package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressLine renders one line of the convergence progress bar.
func progressLine(label string, done, total int, elapsed, bound time.Duration, calls, limited int64) string {
	const width = 30
	frac := 0.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	return fmt.Sprintf("%-10s [%s] %*d/%d %3.0f%%  %6.1fs (bound %.1fs)  calls %d  429s %d",
		label, bar, len(fmt.Sprint(total)), done, total, frac*100, elapsed.Seconds(), bound.Seconds(), calls, limited)
}

// progress writes progress lines to a terminal in place, or every few seconds to a log.
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	every time.Duration
}

func newProgress(f *os.File) *progress {
	tty := false
	if fi, err := f.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return &progress{w: f, tty: tty, every: 10 * time.Second}
}

// update shows line; final ends it.
func (p *progress) update(line string, final bool) {
	switch {
	case p.tty:
		_, _ = fmt.Fprintf(p.w, "\r%s\033[K", line)
		if final {
			_, _ = fmt.Fprintln(p.w)
		}
	case final || time.Since(p.last) >= p.every:
		_, _ = fmt.Fprintln(p.w, line)
		p.last = time.Now()
	}
}
