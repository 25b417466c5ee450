package charttest

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePromQLAccepts(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		metrics []string
		labels  []string // grouping labels
	}{
		{expr: `up`, metrics: []string{"up"}},
		{expr: `sum by (instance) (rate(a_total{code=~"2..", x!="y"}[5m]))`, metrics: []string{"a_total"}, labels: []string{"instance"}},
		{expr: `sum(rate(a_total[5m])) without (pod)`, metrics: []string{"a_total"}, labels: []string{"pod"}},
		{expr: `a / on (ns, instance) group_left (version) b > 0.9`, metrics: []string{"a", "b"}, labels: []string{"ns", "instance", "version"}},
		{expr: "x > 20\nunless on (i)\n(rate(x[30m]) <= 3 * rate(x[1d] offset 30m))", metrics: []string{"x"}, labels: []string{"i"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(d_bucket[5m])))`, metrics: []string{"d_bucket"}, labels: []string{"le"}},
		{expr: `topk(3, sum by (a) (b))`, metrics: []string{"b"}, labels: []string{"a"}},
		{expr: `count_values("v", b)`, metrics: []string{"b"}},
		{expr: `sum(a) or vector(0)`, metrics: []string{"a"}},
		{expr: `-a ^ 2 + 1e-3 * 0x10`, metrics: []string{"a"}},
		{expr: `max_over_time(rate(a[5m])[1h:1m])`, metrics: []string{"a"}},
		{expr: `{__name__="a", job!=""}`, metrics: []string{"a"}},
		{expr: `label_replace(a, 'dst', "$1", "src", "(.*)")`, metrics: []string{"a"}},
		{expr: `a @ start() offset -5m`, metrics: []string{"a"}},
		{expr: `1 == bool 2`},
		{expr: `time() - 60 # a comment`},
	} {
		q, err := ParsePromQL(tc.expr)
		if err != nil {
			t.Errorf("ParsePromQL(%q): %v", tc.expr, err)
			continue
		}
		if got := q.Metrics(); !slices.Equal(got, tc.metrics) {
			t.Errorf("ParsePromQL(%q) metrics = %q, want %q", tc.expr, got, tc.metrics)
		}
		if !slices.Equal(q.GroupingLabels, tc.labels) {
			t.Errorf("ParsePromQL(%q) grouping labels = %q, want %q", tc.expr, q.GroupingLabels, tc.labels)
		}
	}
}

func TestParsePromQLRejects(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`rate(a)`, "want a range vector"},
		{`sum(a[5m])`, "aggregates instant vectors"},
		{`a[5m]`, "range vector"},
		{`rate(sum(a)[5m])`, "needs a vector selector"},
		{`sum by (x) (a`, `expected ")"`},
		{`a{b="c"`, `expected ","`},
		{`a{b=c}`, "expected a string"},
		{`a{b=~"("}`, "bad regexp"},
		{`nosuchfunction(a)`, "unknown function"},
		{`a and 1`, "instant vectors on both sides"},
		{`1 > 2`, "needs bool"},
		{`a + bool b`, "not a comparison"},
		{`a[5x]`, "bad number or duration"},
		{`a offset`, "expected a duration"},
		{`sum by (a) (b) by (c)`, "two grouping clauses"},
		{`histogram_quantile(a, b)`, "want a scalar"},
		{`a + 5m`, "outside a range"},
		{`{job=~".*"}`, "does not match the empty string"},
		{`a b`, "after the expression"},
		{`"unterminated`, "unterminated string"},
		{`by`, "unexpected keyword"},
		{`a $b`, "unexpected character"},
	} {
		_, err := ParsePromQL(tc.expr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePromQL(%q) = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
}
