package clerk

import (
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"99999999999", 24 * time.Hour}, // capped
		{"1.5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(30 * time.Second).Format(time.RFC850), 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRetryAfter(tt.in, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes
		{"ééé", 4, "éé"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := truncateUTF8(tt.in, tt.n)
			if got != tt.want || !utf8.ValidString(got) {
				t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := map[string]bool{
		"user_2dYS7stz9bgxQsSRvNqEAHhuxvW": true,
		"idn_1":                            true,
		"a_B":                              true,
		"":                                 false,
		"user":                             false,
		"user_":                            false,
		"_x":                               false,
		"User_x":                           false,
		"user_x_y":                         false,
		"user_x/..":                        false,
		"user_x\n":                         false,
		"user-x":                           false,
	}
	for id, want := range tests {
		t.Run(id, func(t *testing.T) {
			if got := ValidID(id); got != want {
				t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
			}
		})
	}
}

func TestPauseOnlyExtendsAndIsCapped(t *testing.T) {
	b := &keyBucket{limiter: rate.NewLimiter(rate.Inf, 1)}
	start := time.Now()
	b.pause(3 * time.Second)
	first := b.pausedUntilTime()
	if first.Before(start.Add(3 * time.Second)) {
		t.Fatalf("pausedUntil = %v, want ≥ start+3s", first)
	}
	b.pause(time.Second) // shorter: must not shorten the pause
	if got := b.pausedUntilTime(); !got.Equal(first) {
		t.Errorf("a shorter pause changed pausedUntil from %v to %v", first, got)
	}
	b.pause(time.Hour) // capped at MaxPause
	if got := b.pausedUntilTime(); got.After(time.Now().Add(MaxPause)) || got.Before(start.Add(MaxPause)) {
		t.Errorf("pausedUntil = %v, want about start+%v", got, MaxPause)
	}
	c := &keyBucket{limiter: rate.NewLimiter(rate.Inf, 1)}
	c.pause(0)
	if got := time.Until(c.pausedUntilTime()); got <= 0 || got > DefaultRetryAfter {
		t.Errorf("pause(0) paused for %v, want DefaultRetryAfter", got)
	}
}

func TestRegistryDoesNotHoldTheKey(t *testing.T) {
	const key = "sk_test_RegistryKey123"
	if _, err := New(Options{SecretKey: key}); err != nil {
		t.Fatal(err)
	}
	buckets.Lock()
	defer buckets.Unlock()
	for id := range buckets.m {
		if string(id[:]) == key {
			t.Fatal("registry is keyed by the key itself")
		}
	}
}
