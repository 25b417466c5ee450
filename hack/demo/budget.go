package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// budgetUse is what the manager's metrics say of one instance's Clerk budget.
type budgetUse struct {
	requests  float64 // kubeclerk_clerk_requests_total, all operations and codes
	limited   float64 // kubeclerk_clerk_rate_limited_total
	perSecond float64 // kubeclerk_clerk_budget_requests_per_second
}

// parseBudget reads the Prometheus text exposition of the manager's /metrics into the budget
// use of each instance.
func parseBudget(r io.Reader) (map[string]*budgetUse, error) {
	out := map[string]*budgetUse{}
	get := func(instance string) *budgetUse {
		if out[instance] == nil {
			out[instance] = &budgetUse{}
		}
		return out[instance]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			continue
		}
		instance := labelValue(labels, "instance")
		switch name {
		case "kubeclerk_clerk_requests_total":
			get(instance).requests += v
		case "kubeclerk_clerk_rate_limited_total":
			get(instance).limited += v
		case "kubeclerk_clerk_budget_requests_per_second":
			get(instance).perSecond = v
		}
	}
	return out, sc.Err()
}

// labelValue returns the value of label name in a Prometheus label set such as
// `instance="default",code="200"`.
func labelValue(labels, name string) string {
	for kv := range strings.SplitSeq(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// budgetText is one line per instance: the Clerk calls kubeclerk made, their rate since the
// manager started, and the share of the budget that rate is.
func budgetText(use map[string]*budgetUse, since time.Duration) string {
	names := make([]string, 0, len(use))
	for n := range use {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		u := use[n]
		rate := u.requests / max(since.Seconds(), 1)
		fmt.Fprintf(&b, "Clerk budget (%s): %.0f calls in %s, %.2f/s on average = %.1f%% of the %.0f/s budget; %.0f answered 429\n",
			n, u.requests, since.Round(time.Second), rate, 100*rate/max(u.perSecond, 1e-9), u.perSecond, u.limited)
	}
	return b.String()
}

// printBudget scrapes the manager's metrics and prints its budget use and the webhooks it took.
func (d *demo) printBudget(ctx context.Context) {
	if d.metricsAddr == "" {
		return
	}
	b, err := d.scrapeMetrics(ctx)
	if err != nil {
		d.printf("Metrics: %v\n", err)
		return
	}
	use, err := parseBudget(bytes.NewReader(b))
	if err != nil {
		d.printf("Metrics: %v\n", err)
		return
	}
	d.printf("%s", budgetText(use, time.Since(d.managerStart)))
	events, err := parseWebhookEvents(bytes.NewReader(b))
	if err != nil {
		d.printf("Metrics: %v\n", err)
		return
	}
	url := ""
	if d.webhookAddr != "" {
		url = d.webhookURL()
	}
	d.printf("%s", webhookText(events, url, d.fake.srv.Stats().Webhooks))
}
