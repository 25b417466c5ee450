// Package charttest holds the tests of the Helm chart (charts/kubeclerk) and of the monitoring
// files (config/prometheus): the chart renders the same manager, RBAC and CRDs as config/default,
// passes helm lint, renders valid objects with non-default values, and every PromQL expression of
// the alerts and the Grafana dashboard parses and queries only metrics kubeclerk or
// controller-runtime export.
//
// The PromQL parser here is deliberately small (github.com/prometheus/prometheus is not a
// dependency of this module, and pulling it in for a test would add hundreds of modules): a
// recursive-descent parser of the PromQL grammar that checks syntax, operand types (a range vector
// only where a function wants one), known functions and aggregations, and label-matcher regexps,
// and reports every selector with its matchers and every label named in a by/without/on/ignoring/
// group_left/group_right clause. It knows nothing about Grafana: callers substitute Grafana's
// variables first.
package charttest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Matcher is one label matcher of a selector.
type Matcher struct {
	Label, Op, Value string
}

// Selector is one instant or range vector selector.
type Selector struct {
	// Metric is the metric name ("" for a selector by matchers only, unless it has an
	// equality matcher on __name__).
	Metric   string
	Matchers []Matcher
}

// Query is what a parsed expression refers to.
type Query struct {
	Selectors []Selector
	// GroupingLabels are the labels of by, without, on, ignoring, group_left and group_right.
	GroupingLabels []string
}

// Metrics lists the metric names the query selects, once each, in order of appearance.
func (q *Query) Metrics() []string {
	var out []string
	for _, s := range q.Selectors {
		if s.Metric != "" && !slices.Contains(out, s.Metric) {
			out = append(out, s.Metric)
		}
	}
	return out
}

// ParsePromQL parses a PromQL expression.
func ParsePromQL(expr string) (*Query, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &promParser{toks: toks, q: &Query{}}
	typ, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t, "unexpected %s after the expression", t)
	}
	if typ == tyMatrix {
		return nil, fmt.Errorf("the expression is a range vector; it must be an instant vector, a scalar or a string")
	}
	return p.q, nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tDuration
	tString
	tOp // operators and punctuation
)

type lexeme struct {
	kind tokKind
	val  string
	pos  int
}

func (t lexeme) String() string {
	if t.kind == tEOF {
		return "end of input"
	}
	return strconv.Quote(t.val)
}

var durationRE = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// lex splits expr into tokens; # starts a comment to the end of the line.
func lex(expr string) ([]lexeme, error) {
	l := &lexer{r: []rune(expr)}
	for l.i < len(l.r) {
		if err := l.step(); err != nil {
			return nil, err
		}
	}
	return append(l.toks, lexeme{kind: tEOF, pos: len(l.r)}), nil
}

type lexer struct {
	r        []rune
	i        int
	brackets int // inside [ ], ':' separates a subquery's range and step
	toks     []lexeme
}

// step lexes the token (or space or comment) at l.i.
func (l *lexer) step() error {
	c := l.r[l.i]
	switch {
	case unicode.IsSpace(c):
		l.i++
	case c == '#':
		for l.i < len(l.r) && l.r[l.i] != '\n' {
			l.i++
		}
	case c == '_' || c == ':' && l.brackets == 0 || unicode.IsLetter(c):
		l.ident()
	case unicode.IsDigit(c) || c == '.' && l.i+1 < len(l.r) && unicode.IsDigit(l.r[l.i+1]):
		return l.number()
	case c == '"' || c == '\'' || c == '`':
		return l.str()
	default:
		return l.op()
	}
	return nil
}

func isIdentRune(c rune) bool {
	return c == '_' || c == ':' || c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c))
}

func (l *lexer) ident() {
	j := l.i
	for j < len(l.r) && isIdentRune(l.r[j]) {
		j++
	}
	l.toks = append(l.toks, lexeme{tIdent, string(l.r[l.i:j]), l.i})
	l.i = j
}

// number lexes a number (decimal, float with exponent, hex) or a duration (5m, 1h30m).
func (l *lexer) number() error {
	r, i, j := l.r, l.i, l.i
	for ; j < len(r); j++ {
		c := r[j]
		exponentSign := (c == '+' || c == '-') && j > i && (r[j-1] == 'e' || r[j-1] == 'E') &&
			!durationRE.MatchString(string(r[i:j]))
		if !unicode.IsDigit(c) && !unicode.IsLetter(c) && c != '.' && c != '_' && !exponentSign {
			break
		}
	}
	s := string(r[i:j])
	kind := tNumber
	if durationRE.MatchString(s) {
		kind = tDuration
	} else if _, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err != nil {
		if _, err := strconv.ParseInt(s, 0, 64); err != nil {
			return fmt.Errorf("at %d: bad number or duration %q", i, s)
		}
	}
	l.toks = append(l.toks, lexeme{kind, s, i})
	l.i = j
	return nil
}

// str lexes a "double-quoted" or 'single-quoted' string with Go escapes, or a `raw` one.
func (l *lexer) str() error {
	r, i := l.r, l.i
	q := r[i]
	j := i + 1
	for ; j < len(r) && r[j] != q; j++ {
		if r[j] == '\\' && q != '`' {
			j++
		}
		if q != '`' && j < len(r) && r[j] == '\n' {
			return fmt.Errorf("at %d: newline in a string", i)
		}
	}
	if j >= len(r) {
		return fmt.Errorf("at %d: unterminated string", i)
	}
	raw := string(r[i : j+1])
	val := raw[1 : len(raw)-1]
	if q != '`' {
		quoted := raw
		if q == '\'' {
			quoted = `"` + strings.ReplaceAll(strings.ReplaceAll(val, `\'`, `'`), `"`, `\"`) + `"`
		}
		u, err := strconv.Unquote(quoted)
		if err != nil {
			return fmt.Errorf("at %d: bad string %s: %w", i, raw, err)
		}
		val = u
	}
	l.toks = append(l.toks, lexeme{tString, val, i})
	l.i = j + 1
	return nil
}

// op lexes an operator or punctuation.
func (l *lexer) op() error {
	r, i := l.r, l.i
	if i+1 < len(r) {
		switch two := string(r[i : i+2]); two {
		case "==", "!=", "<=", ">=", "=~", "!~":
			l.toks = append(l.toks, lexeme{tOp, two, i})
			l.i += 2
			return nil
		}
	}
	c := r[i]
	if !strings.ContainsRune("+-*/%^<>=,(){}[]:@", c) {
		return fmt.Errorf("at %d: unexpected character %q", i, c)
	}
	switch c {
	case '[':
		l.brackets++
	case ']':
		l.brackets--
	}
	l.toks = append(l.toks, lexeme{tOp, string(c), i})
	l.i++
	return nil
}

// valType is the type of a PromQL expression.
type valType int

const (
	tyScalar valType = iota
	tyVector
	tyMatrix
	tyString
)

func (t valType) String() string {
	return [...]string{"a scalar", "an instant vector", "a range vector", "a string"}[t]
}

// functions gives each function's argument types; a trailing variadic argument type repeats,
// optional arguments are counted by minArgs.
type function struct {
	args     []valType
	minArgs  int
	variadic bool
	ret      valType
}

var functions = func() map[string]function {
	f := map[string]function{}
	v1 := function{args: []valType{tyVector}, minArgs: 1, ret: tyVector}
	for _, n := range []string{"abs", "ceil", "exp", "floor", "ln", "log2", "log10", "sqrt", "sgn", "absent",
		"acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad",
		"timestamp", "sort", "sort_desc", "histogram_avg", "histogram_count", "histogram_sum", "histogram_stddev",
		"histogram_stdvar"} {
		f[n] = v1
	}
	for _, n := range []string{"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"} {
		f[n] = function{args: []valType{tyVector}, minArgs: 0, ret: tyVector}
	}
	m1 := function{args: []valType{tyMatrix}, minArgs: 1, ret: tyVector}
	for _, n := range []string{"rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
		"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "stddev_over_time",
		"stdvar_over_time", "last_over_time", "present_over_time", "absent_over_time", "mad_over_time"} {
		f[n] = m1
	}
	f["quantile_over_time"] = function{args: []valType{tyScalar, tyMatrix}, minArgs: 2, ret: tyVector}
	f["predict_linear"] = function{args: []valType{tyMatrix, tyScalar}, minArgs: 2, ret: tyVector}
	f["holt_winters"] = function{args: []valType{tyMatrix, tyScalar, tyScalar}, minArgs: 3, ret: tyVector}
	f["double_exponential_smoothing"] = f["holt_winters"]
	f["histogram_quantile"] = function{args: []valType{tyScalar, tyVector}, minArgs: 2, ret: tyVector}
	f["histogram_fraction"] = function{args: []valType{tyScalar, tyScalar, tyVector}, minArgs: 3, ret: tyVector}
	f["round"] = function{args: []valType{tyVector, tyScalar}, minArgs: 1, ret: tyVector}
	f["clamp"] = function{args: []valType{tyVector, tyScalar, tyScalar}, minArgs: 3, ret: tyVector}
	f["clamp_max"] = function{args: []valType{tyVector, tyScalar}, minArgs: 2, ret: tyVector}
	f["clamp_min"] = f["clamp_max"]
	f["label_replace"] = function{args: []valType{tyVector, tyString, tyString, tyString, tyString}, minArgs: 5, ret: tyVector}
	f["label_join"] = function{args: []valType{tyVector, tyString, tyString, tyString}, minArgs: 3, variadic: true, ret: tyVector}
	f["sort_by_label"] = function{args: []valType{tyVector, tyString}, minArgs: 1, variadic: true, ret: tyVector}
	f["sort_by_label_desc"] = f["sort_by_label"]
	f["scalar"] = function{args: []valType{tyVector}, minArgs: 1, ret: tyScalar}
	f["vector"] = function{args: []valType{tyScalar}, minArgs: 1, ret: tyVector}
	f["time"] = function{ret: tyScalar}
	f["pi"] = function{ret: tyScalar}
	return f
}()

// aggregations maps each aggregation operator to the type of its parameter (-1: none).
var aggregations = map[string]int{
	"sum": -1, "avg": -1, "min": -1, "max": -1, "count": -1, "group": -1, "stddev": -1, "stdvar": -1,
	"topk": int(tyScalar), "bottomk": int(tyScalar), "limitk": int(tyScalar), "limit_ratio": int(tyScalar),
	"quantile": int(tyScalar), "count_values": int(tyString),
}

// keywords may not be metric names.
var keywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
	opAnd, opOr, opUnless, "atan2"}

// The set operators.
const (
	opAnd    = "and"
	opOr     = "or"
	opUnless = "unless"
)

// binary operators by precedence (higher binds tighter).
var binaryPrecedence = map[string]int{
	opOr: 1, opAnd: 2, opUnless: 2,
	"==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
	"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}

func isComparison(op string) bool { return binaryPrecedence[op] == 3 }
func isSetOp(op string) bool      { return op == opAnd || op == opOr || op == opUnless }

type promParser struct {
	toks []lexeme
	i    int
	q    *Query
}

func (p *promParser) peek() lexeme { return p.toks[p.i] }
func (p *promParser) next() lexeme {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *promParser) errorf(t lexeme, format string, args ...any) error {
	return fmt.Errorf("at %d: %s", t.pos, fmt.Sprintf(format, args...))
}

func (p *promParser) isOp(val string) bool {
	t := p.peek()
	return (t.kind == tOp || t.kind == tIdent) && t.val == val
}

func (p *promParser) expect(val string) error {
	if t := p.next(); t.kind != tOp && t.kind != tIdent || t.val != val {
		return p.errorf(t, "expected %q, found %s", val, t)
	}
	return nil
}

// binaryOp returns the binary operator at the current token, if any.
func (p *promParser) binaryOp() (string, bool) {
	t := p.peek()
	if t.kind != tOp && t.kind != tIdent {
		return "", false
	}
	if _, ok := binaryPrecedence[t.val]; !ok {
		return "", false
	}
	return t.val, true
}

// expr parses an expression whose binary operators bind tighter than minPrec.
func (p *promParser) expr(minPrec int) (valType, error) {
	left, err := p.unary()
	if err != nil {
		return 0, err
	}
	for {
		op, ok := p.binaryOp()
		if !ok || binaryPrecedence[op] <= minPrec {
			return left, nil
		}
		opTok := p.next()
		returnBool, matching, err := p.modifiers(op)
		if err != nil {
			return 0, err
		}
		prec := binaryPrecedence[op]
		if op == "^" {
			prec-- // right-associative
		}
		right, err := p.expr(prec)
		if err != nil {
			return 0, err
		}
		for _, side := range []valType{left, right} {
			if side == tyMatrix || side == tyString {
				return 0, p.errorf(opTok, "%s operand of %s; only scalars and instant vectors", side, op)
			}
		}
		switch {
		case isSetOp(op) && (left != tyVector || right != tyVector):
			return 0, p.errorf(opTok, "%s needs instant vectors on both sides", op)
		case matching && (left != tyVector || right != tyVector):
			return 0, p.errorf(opTok, "vector matching (on/ignoring) between %s and %s", left, right)
		case isComparison(op) && left == tyScalar && right == tyScalar && !returnBool:
			return 0, p.errorf(opTok, "comparison of two scalars needs bool")
		}
		if left == tyVector || right == tyVector {
			left = tyVector
		} else {
			left = tyScalar
		}
	}
}

// modifiers parses what may follow binary operator op: bool, on/ignoring (labels) and
// group_left/group_right [(labels)].
func (p *promParser) modifiers(op string) (returnBool, matching bool, err error) {
	if p.isOp("bool") {
		if !isComparison(op) {
			return false, false, p.errorf(p.peek(), "bool after %s, which is not a comparison", op)
		}
		p.next()
		returnBool = true
	}
	if !p.isOp("on") && !p.isOp("ignoring") {
		return returnBool, false, nil
	}
	p.next()
	if err := p.labelList(); err != nil {
		return false, false, err
	}
	if p.isOp("group_left") || p.isOp("group_right") {
		if isSetOp(op) {
			return false, false, p.errorf(p.peek(), "no grouping modifier with %s", op)
		}
		p.next()
		if p.isOp("(") {
			if err := p.labelList(); err != nil {
				return false, false, err
			}
		}
	}
	return returnBool, true, nil
}

func (p *promParser) unary() (valType, error) {
	if p.isOp("-") || p.isOp("+") {
		t := p.next()
		typ, err := p.expr(binaryPrecedence["*"]) // binds tighter than * and looser than ^
		if err != nil {
			return 0, err
		}
		if typ != tyScalar && typ != tyVector {
			return 0, p.errorf(t, "unary %s of %s", t.val, typ)
		}
		return typ, nil
	}
	return p.postfix()
}

// postfix parses a primary expression and its range, subquery, offset and @ modifiers.
func (p *promParser) postfix() (valType, error) {
	start := p.peek()
	typ, isSelector, err := p.primary()
	if err != nil {
		return 0, err
	}
	modified := false
	for {
		switch {
		case p.isOp("["):
			bt := p.next()
			if modified {
				return 0, p.errorf(bt, "a range must come before offset and @")
			}
			if typ != tyVector {
				return 0, p.errorf(bt, "a range or subquery of %s", typ)
			}
			if err := p.duration(); err != nil {
				return 0, err
			}
			subquery := false
			if p.isOp(":") {
				p.next()
				subquery = true
				if !p.isOp("]") {
					if err := p.duration(); err != nil {
						return 0, err
					}
				}
			}
			if err := p.expect("]"); err != nil {
				return 0, err
			}
			if !subquery && !isSelector {
				return 0, p.errorf(start, "a range needs a vector selector; use a subquery [range:step] otherwise")
			}
			typ = tyMatrix
		case p.isOp("offset"):
			t := p.next()
			if typ != tyVector && typ != tyMatrix {
				return 0, p.errorf(t, "offset of %s", typ)
			}
			if p.isOp("-") {
				p.next()
			}
			if err := p.duration(); err != nil {
				return 0, err
			}
			modified = true
		case p.isOp("@"):
			t := p.next()
			if typ != tyVector && typ != tyMatrix {
				return 0, p.errorf(t, "@ of %s", typ)
			}
			switch n := p.next(); {
			case n.kind == tNumber:
			case n.kind == tIdent && (n.val == "start" || n.val == "end"):
				if err := p.expect("("); err != nil {
					return 0, err
				}
				if err := p.expect(")"); err != nil {
					return 0, err
				}
			default:
				return 0, p.errorf(n, "@ needs a timestamp, start() or end()")
			}
			modified = true
		default:
			return typ, nil
		}
	}
}

func (p *promParser) duration() error {
	if t := p.next(); t.kind != tDuration {
		return p.errorf(t, "expected a duration (5m, 1h30m, ...), found %s", t)
	}
	return nil
}

// primary parses a literal, parenthesized expression, call, aggregation or selector; isSelector
// says it was a plain vector selector (which a range may follow).
func (p *promParser) primary() (typ valType, isSelector bool, err error) {
	t := p.peek()
	switch t.kind {
	case tNumber:
		p.next()
		return tyScalar, false, nil
	case tString:
		p.next()
		return tyString, false, nil
	case tDuration:
		return 0, false, p.errorf(t, "duration %s outside a range, subquery or offset", t)
	case tEOF:
		return 0, false, p.errorf(t, "unexpected end of input")
	case tOp:
		switch t.val {
		case "(":
			p.next()
			typ, err := p.expr(0)
			if err != nil {
				return 0, false, err
			}
			return typ, false, p.expect(")")
		case "{":
			return tyVector, true, p.selector("")
		}
		return 0, false, p.errorf(t, "unexpected %s", t)
	}
	// An identifier.
	name := t.val
	switch {
	case name == "Inf" || name == "NaN" || strings.EqualFold(name, "inf") || strings.EqualFold(name, "nan"):
		p.next()
		return tyScalar, false, nil
	case isAggregation(name):
		return tyVector, false, p.aggregation()
	case slices.Contains(keywords, name):
		return 0, false, p.errorf(t, "unexpected keyword %s", t)
	}
	p.next()
	if p.isOp("(") {
		f, ok := functions[name]
		if !ok {
			return 0, false, p.errorf(t, "unknown function %s", t)
		}
		return f.ret, false, p.call(t, f)
	}
	return tyVector, true, p.selector(name)
}

func isAggregation(name string) bool {
	_, ok := aggregations[name]
	return ok
}

func (p *promParser) call(name lexeme, f function) error {
	p.next() // (
	var n int
	for !p.isOp(")") {
		if n > 0 {
			if err := p.expect(","); err != nil {
				return err
			}
		}
		at := p.peek()
		typ, err := p.expr(0)
		if err != nil {
			return err
		}
		var want valType
		switch {
		case n < len(f.args):
			want = f.args[n]
		case f.variadic && len(f.args) > 0:
			want = f.args[len(f.args)-1]
		default:
			return p.errorf(at, "too many arguments to %s", name.val)
		}
		if typ != want {
			return p.errorf(at, "argument %d of %s: got %s, want %s", n+1, name.val, typ, want)
		}
		n++
	}
	p.next() // )
	if n < f.minArgs {
		return p.errorf(name, "%s needs at least %d arguments, has %d", name.val, f.minArgs, n)
	}
	return nil
}

func (p *promParser) aggregation() error {
	op := p.next()
	grouped := false
	if p.isOp("by") || p.isOp("without") {
		p.next()
		if err := p.labelList(); err != nil {
			return err
		}
		grouped = true
	}
	if err := p.expect("("); err != nil {
		return err
	}
	if pt := aggregations[op.val]; pt >= 0 {
		at := p.peek()
		typ, err := p.expr(0)
		if err != nil {
			return err
		}
		if typ != valType(pt) {
			return p.errorf(at, "the parameter of %s: got %s, want %s", op.val, typ, valType(pt))
		}
		if err := p.expect(","); err != nil {
			return err
		}
	}
	at := p.peek()
	typ, err := p.expr(0)
	if err != nil {
		return err
	}
	if typ != tyVector {
		return p.errorf(at, "%s of a %s; it aggregates instant vectors", op.val, typ)
	}
	if err := p.expect(")"); err != nil {
		return err
	}
	if p.isOp("by") || p.isOp("without") {
		t := p.next()
		if grouped {
			return p.errorf(t, "%s has two grouping clauses", op.val)
		}
		return p.labelList()
	}
	return nil
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// labelList parses ( label, ... ) and records the labels.
func (p *promParser) labelList() error {
	if err := p.expect("("); err != nil {
		return err
	}
	for n := 0; !p.isOp(")"); n++ {
		if n > 0 {
			if err := p.expect(","); err != nil {
				return err
			}
			if p.isOp(")") {
				break
			}
		}
		t := p.next()
		if t.kind != tIdent || !labelNameRE.MatchString(t.val) {
			return p.errorf(t, "expected a label name, found %s", t)
		}
		p.q.GroupingLabels = append(p.q.GroupingLabels, t.val)
	}
	p.next() // )
	return nil
}

// selector parses the optional {matchers} of metric name (required without a name) and records
// the selector.
func (p *promParser) selector(name string) error {
	sel := Selector{Metric: name}
	if !p.isOp("{") {
		if name == "" {
			return p.errorf(p.peek(), "expected a selector")
		}
		p.q.Selectors = append(p.q.Selectors, sel)
		return nil
	}
	p.next()
	for n := 0; !p.isOp("}"); n++ {
		if n > 0 {
			if err := p.expect(","); err != nil {
				return err
			}
			if p.isOp("}") {
				break
			}
		}
		l := p.next()
		if l.kind != tIdent || !labelNameRE.MatchString(l.val) {
			return p.errorf(l, "expected a label name, found %s", l)
		}
		op := p.next()
		if op.kind != tOp || !slices.Contains([]string{"=", "!=", "=~", "!~"}, op.val) {
			return p.errorf(op, "expected =, !=, =~ or !~, found %s", op)
		}
		v := p.next()
		if v.kind != tString {
			return p.errorf(v, "expected a string, found %s", v)
		}
		if op.val == "=~" || op.val == "!~" {
			if _, err := regexp.Compile("^(?:" + v.val + ")$"); err != nil {
				return p.errorf(v, "bad regexp %q: %v", v.val, err)
			}
		}
		if l.val == "__name__" {
			if name != "" {
				return p.errorf(l, "metric name given twice")
			}
			if op.val == "=" {
				sel.Metric = v.val
			}
		}
		sel.Matchers = append(sel.Matchers, Matcher{Label: l.val, Op: op.val, Value: v.val})
	}
	p.next() // }
	if name == "" && !slices.ContainsFunc(sel.Matchers, matchesNonEmptyOnly) {
		return fmt.Errorf("a selector without a metric name needs a matcher that does not match the empty string")
	}
	p.q.Selectors = append(p.q.Selectors, sel)
	return nil
}

// matchesNonEmptyOnly reports whether m rejects the empty value.
func matchesNonEmptyOnly(m Matcher) bool {
	switch m.Op {
	case "=":
		return m.Value != ""
	case "=~":
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		return err == nil && !re.MatchString("")
	}
	return false
}
