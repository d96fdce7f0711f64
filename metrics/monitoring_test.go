package metrics_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
)

// The Grafana dashboard and the alerting rules in monitoring/ query the
// series of this package. TestMonitoringNamesExportedSeries checks every
// expression of both against the series a registry holds once a stage of
// every kind is instrumented: each resilience_ series it names must exist,
// and each label it matches on, groups by or leaves out must be one that
// series has. A literal label value it matches (result="rejected") must be
// one the series takes.
//
// The check reads PromQL with a few regular expressions, not a parser:
// it finds each series name, the {...} after it, and the labels of by,
// without, on and ignoring. It does not know label_replace, nor a series
// named through __name__, and says so.

const (
	dashboardFile = "../monitoring/grafana-dashboard.json"
	alertsFile    = "../monitoring/alerts.yml"
)

// targetLabels are the labels Prometheus gives every series it scrapes,
// from its scrape configuration: no series of the package has them.
var targetLabels = []string{"job", "instance"}

// freeLabels are labels whose values come from the stages' names and the
// calls (and le, from the buckets): matched values are not checked.
var freeLabels = []string{"name", "key", "le"}

// exported maps each series name to its labels, and each label to the
// values it takes.
type exported map[string]map[string]map[string]bool

// exportedSeries instruments one stage of every kind the library has and
// returns the series the registry then holds. Every series exists from
// the start, at zero.
func exportedSeries(t *testing.T) exported {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 1}))
	stages := []resilience.Stage{
		must(resilience.NewBreaker(resilience.BreakerConfig{Name: "mon"})),
		must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "mon", Duration: time.Second})),
		must(resilience.NewRetry(resilience.RetryConfig{Name: "mon", MaxRetries: 1})),
		must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "mon", MaxConcurrent: 1})),
		must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "mon"})),
		must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "mon", Rate: 1, Burst: 1})),
		must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "mon"})),
		must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Name: "mon"})),
		must(resilience.NewChaos(resilience.ChaosConfig{Name: "mon", Rate: 0.5, Seed: 1})),
		must(resilience.NewKeyed(resilience.KeyedConfig{Name: "mon"}, func(string) (*resilience.Bulkhead, error) {
			return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "mon", MaxConcurrent: 1})
		})),
		must(resilience.NewKeyed(resilience.KeyedConfig{Name: "mon"}, func(string) (*resilience.RateLimiter, error) {
			return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "mon", Rate: 1, Burst: 1})
		})),
		must(resilience.NewKeyed(resilience.KeyedConfig{Name: "mon"}, func(string) (*resilience.Throttler, error) {
			return resilience.NewThrottler(resilience.ThrottlerConfig{Name: "mon"})
		})),
	}
	if err := m.Instrument(stages...); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ex := exported{}
	add := func(series string, m *dto.Metric, extra string, values ...string) {
		labels := ex[series]
		if labels == nil {
			labels = map[string]map[string]bool{}
			ex[series] = labels
		}
		set := func(l, v string) {
			if labels[l] == nil {
				labels[l] = map[string]bool{}
			}
			labels[l][v] = true
		}
		for _, lp := range m.GetLabel() {
			set(lp.GetName(), lp.GetValue())
		}
		for _, v := range values {
			set(extra, v)
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				le := []string{"+Inf"}
				for _, b := range m.GetHistogram().GetBucket() {
					le = append(le, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
				}
				add(name+"_bucket", m, "le", le...)
				add(name+"_sum", m, "")
				add(name+"_count", m, "")
			case dto.MetricType_SUMMARY:
				var q []string
				for _, s := range m.GetSummary().GetQuantile() {
					q = append(q, strconv.FormatFloat(s.GetQuantile(), 'g', -1, 64))
				}
				add(name, m, "quantile", q...)
				add(name+"_sum", m, "")
				add(name+"_count", m, "")
			default:
				add(name, m, "")
			}
		}
	}
	// Every kind of stage has its series: a kind left out above would
	// leave the panels that chart it unchecked.
	for _, kind := range []string{"circuit_breaker", resilience.KindKeyedBreaker, resilience.KindRateLimit, resilience.KindThrottle,
		resilience.KindRetryBudget, resilience.KindChaos, "keyed_" + resilience.KindBulkhead, "keyed_" + resilience.KindRateLimit, "keyed_" + resilience.KindThrottle} {
		if ex["resilience_"+kind+"_calls_total"] == nil {
			t.Errorf("no series resilience_%s_calls_total: instrument a stage of kind %s here", kind, kind)
		}
	}
	for _, s := range []string{"resilience_timeout_operations_total", "resilience_retry_attempts_count", "resilience_bulkhead_in_use", "resilience_keyed_breaker_key_state"} {
		if ex[s] == nil {
			t.Errorf("no series %s", s)
		}
	}
	return ex
}

// query is one expression of the dashboard or the rules, and where it is.
type query struct {
	where string // the panel, variable or alert
	expr  string
}

var (
	identRE    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	matcherRE  = regexp.MustCompile("^\\s*([A-Za-z_][A-Za-z0-9_]*)\\s*(=~|!~|!=|=)\\s*(\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`)\\s*(?:,|$)")
	wordsRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+(\|[A-Za-z0-9_-]+)*$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelValRE = regexp.MustCompile(`label_values\(\s*(.*?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)`)
)

// blank returns expr with the text of its string literals and comments
// replaced by spaces, so that nothing in them is taken for a name or a
// bracket; indices are those of expr.
func blank(expr string) string {
	b := []byte(expr)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"', '\'', '`':
			for i++; i < len(b) && b[i] != c; i++ {
				if b[i] == '\\' && c != '`' && i+1 < len(b) {
					b[i] = ' '
					i++
				}
				b[i] = ' '
			}
		case '#':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		}
	}
	return string(b)
}

// match returns the index of the bracket that closes the one at i in code
// (open '(' or '{', walking forward; close ')', walking back), or -1.
func match(code string, i int) int {
	pairs := map[byte]byte{'(': ')', '{': '}', ')': '(', '}': '{'}
	open, close := code[i], pairs[code[i]]
	step := 1
	if open == ')' || open == '}' {
		step = -1
	}
	depth := 0
	for j := i; j >= 0 && j < len(code); j += step {
		switch code[j] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func skipSpace(code string, i, step int) int {
	for i >= 0 && i < len(code) && (code[i] == ' ' || code[i] == '\t' || code[i] == '\n' || code[i] == '\r') {
		i += step
	}
	return i
}

// unquote returns the value of a PromQL string literal.
func unquote(s string) (string, error) {
	if strings.HasPrefix(s, "'") {
		s = `"` + strings.ReplaceAll(strings.ReplaceAll(s[1:len(s)-1], `\'`, `'`), `"`, `\"`) + `"`
	}
	return strconv.Unquote(s)
}

// checkExpr returns what is wrong with expr: series it names that ex
// lacks, labels they lack, and label values they never take.
func checkExpr(expr string, ex exported) []string {
	var problems []string
	code := blank(expr)
	type use struct {
		name     string
		from, to int // the name and its {...}, if any
	}
	var uses []use
	for _, loc := range identRE.FindAllStringIndex(code, -1) {
		name := code[loc[0]:loc[1]]
		if !strings.HasPrefix(name, "resilience_") {
			continue
		}
		u := use{name: name, from: loc[0], to: loc[1]}
		labels, ok := ex[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("series %s is not one the metrics package exports", name))
		}
		if j := skipSpace(code, loc[1], 1); j < len(code) && code[j] == '{' {
			end := match(code, j)
			if end < 0 {
				problems = append(problems, fmt.Sprintf("%s: no } closes its matchers", name))
				uses = append(uses, u)
				continue
			}
			u.to = end + 1
			if ok {
				problems = append(problems, checkMatchers(name, expr[j+1:end], labels)...)
			}
		}
		uses = append(uses, u)
	}
	if len(uses) == 0 {
		problems = append(problems, "names no resilience_ series, so nothing in it can be checked")
	}
	if strings.Contains(code, "__name__") {
		problems = append(problems, "matches __name__: name each series plainly, so that it can be checked")
	}
	if strings.Contains(code, "label_replace") || strings.Contains(code, "label_join") {
		problems = append(problems, "uses label_replace or label_join, whose labels this check does not know")
	}
	has := func(series, label string) bool {
		_, ok := ex[series][label]
		return ok || slices.Contains(targetLabels, label) || ex[series] == nil // an unknown series is reported already
	}

	// by, without, on, ignoring, group_left, group_right and their labels.
	for _, loc := range identRE.FindAllStringIndex(code, -1) {
		kw := code[loc[0]:loc[1]]
		if !slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, kw) {
			continue
		}
		open := skipSpace(code, loc[1], 1)
		if open >= len(code) || code[open] != '(' {
			continue
		}
		closing := match(code, open)
		if closing < 0 {
			problems = append(problems, fmt.Sprintf("%s: no ) closes its labels", kw))
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(code[open+1:closing], ",") {
			if l = strings.TrimSpace(l); l != "" {
				if !labelRE.MatchString(l) {
					problems = append(problems, fmt.Sprintf("%s (%s): %q is not a label name", kw, code[open+1:closing], l))
					continue
				}
				labels = append(labels, l)
			}
		}
		// The series the clause applies to: an aggregation's argument, the
		// group after its labels (sum by (x) (...)) or before its keyword
		// (sum (...) by (x)); for vector matching, every series of expr.
		var from, to int
		switch kw {
		case "by", "without":
			if a := skipSpace(code, closing+1, 1); a < len(code) && code[a] == '(' {
				from, to = a, match(code, a)
			} else if b := skipSpace(code, loc[0]-1, -1); b >= 0 && code[b] == ')' {
				from, to = match(code, b), b
			} else {
				problems = append(problems, fmt.Sprintf("%s (%s): no aggregation argument found next to it", kw, code[open+1:closing]))
				continue
			}
			if from < 0 || to < 0 {
				problems = append(problems, fmt.Sprintf("%s (%s): unbalanced parentheses around it", kw, code[open+1:closing]))
				continue
			}
			for _, u := range uses {
				if u.from < from || u.to > to+1 {
					continue
				}
				for _, l := range labels {
					if !has(u.name, l) {
						problems = append(problems, fmt.Sprintf("%s (%s): series %s has no label %s", kw, strings.Join(labels, ", "), u.name, l))
					}
				}
			}
		default:
			for _, l := range labels {
				if !slices.ContainsFunc(uses, func(u use) bool { return has(u.name, l) }) {
					problems = append(problems, fmt.Sprintf("%s (%s): no series of the expression has a label %s", kw, strings.Join(labels, ", "), l))
				}
			}
		}
	}

	// label_values(selector, label), in the dashboard's variables.
	for _, m := range labelValRE.FindAllStringSubmatchIndex(code, -1) {
		l := code[m[4]:m[5]]
		for _, u := range uses {
			if u.from >= m[2] && u.to <= m[3] && !has(u.name, l) {
				problems = append(problems, fmt.Sprintf("label_values: series %s has no label %s", u.name, l))
			}
		}
	}
	return problems
}

// checkMatchers checks the matchers between the braces after series, of
// which labels are the labels and their values.
func checkMatchers(series, text string, labels map[string]map[string]bool) []string {
	var problems []string
	for rest := text; strings.TrimSpace(rest) != ""; {
		m := matcherRE.FindStringSubmatch(rest)
		if m == nil {
			return append(problems, fmt.Sprintf("%s{%s}: cannot read the matchers from %q", series, text, rest))
		}
		rest = rest[len(m[0]):]
		label, op := m[1], m[2]
		if slices.Contains(targetLabels, label) {
			continue
		}
		values, ok := labels[label]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no label %s (matched by %s)", series, label, strings.TrimSpace(m[0])))
			continue
		}
		v, err := unquote(m[3])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s{%s}: %v", series, m[0], err))
			continue
		}
		if slices.Contains(freeLabels, label) || strings.Contains(v, "$") || v == "" {
			continue
		}
		want := []string{v}
		if op == "=~" || op == "!~" {
			if !wordsRE.MatchString(v) {
				continue // a regular expression proper: not checked
			}
			want = strings.Split(v, "|")
		}
		for _, w := range want {
			if !values[w] {
				problems = append(problems, fmt.Sprintf("%s{%s%s%q}: %s is never %q; it is one of %s",
					series, label, op, v, label, w, strings.Join(slices.Sorted(maps.Keys(values)), ", ")))
			}
		}
	}
	return problems
}

// dashboardQueries returns every expr of every panel's targets (rows'
// panels included) and every query of the dashboard's variables.
func dashboardQueries(t *testing.T, data []byte) []query {
	t.Helper()
	var dash struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Definition string          `json:"definition"`
				Query      json.RawMessage `json:"query"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if !slices.ContainsFunc(dash.Inputs, func(in struct{ Name, Type, PluginID string }) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("%s: no __inputs entry DS_PROMETHEUS, a prometheus datasource: the dashboard could not be imported", dashboardFile)
	}
	const ds = `{"type":"prometheus","uid":"${DS_PROMETHEUS}"}`
	sameDS := func(raw json.RawMessage) bool {
		var a, b any
		return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(ds), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
	}
	var qs []query
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p struct {
				Title      string            `json:"title"`
				Type       string            `json:"type"`
				Datasource json.RawMessage   `json:"datasource"`
				Panels     []json.RawMessage `json:"panels"`
				Targets    []struct {
					RefID      string          `json:"refId"`
					Expr       string          `json:"expr"`
					Datasource json.RawMessage `json:"datasource"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: a panel: %v", dashboardFile, err)
			}
			if p.Type != "row" && !sameDS(p.Datasource) {
				t.Errorf("%s: panel %q: datasource %s, want %s", dashboardFile, p.Title, p.Datasource, ds)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no target", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if !sameDS(tg.Datasource) {
					t.Errorf("%s: panel %q, target %s: datasource %s, want %s", dashboardFile, p.Title, tg.RefID, tg.Datasource, ds)
				}
				qs = append(qs, query{fmt.Sprintf("panel %q, target %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		if !sameDS(v.Datasource) {
			t.Errorf("%s: variable %q: datasource %s, want %s", dashboardFile, v.Name, v.Datasource, ds)
		}
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("%s: variable %q: its query is neither a string nor an object with one: %v", dashboardFile, v.Name, err)
			}
			q = obj.Query
		}
		if q == "" {
			t.Errorf("%s: variable %q has no query", dashboardFile, v.Name)
		}
		qs = append(qs, query{fmt.Sprintf("variable %q", v.Name), q})
		if v.Definition != "" && v.Definition != q {
			qs = append(qs, query{fmt.Sprintf("variable %q, its definition", v.Name), v.Definition})
		}
	}
	return qs
}

var (
	ruleRE = regexp.MustCompile(`^\s*-\s+(alert|record):\s*(.*?)\s*$`)
	exprRE = regexp.MustCompile(`^(\s*)(-\s+)?expr:\s*(.*?)\s*$`)
)

// ruleQueries returns the expr of every rule of a Prometheus rules file,
// read line by line rather than by a YAML parser, which the module does
// not require: an expr is plain, on its line and the more indented lines
// after it, or a | or > block.
func ruleQueries(text string) ([]query, error) {
	var qs []query
	lines := strings.Split(text, "\n")
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	rule, rules, exprs := "", 0, 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := ruleRE.FindStringSubmatch(line); m != nil {
			rule = m[1] + " " + strings.Trim(m[2], `"'`)
			rules++
			if exprs != rules-1 {
				return nil, fmt.Errorf("line %d: the rule before %s has no expr", i+1, rule)
			}
			continue
		}
		m := exprRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if rule == "" {
			return nil, fmt.Errorf("line %d: an expr before any rule", i+1)
		}
		if m[2] != "" {
			return nil, fmt.Errorf("line %d: a rule whose first key is expr; begin each rule with alert or record, which this test reads", i+1)
		}
		key := len(m[1])
		value := m[3]
		var body []string
		switch {
		case strings.HasPrefix(value, "|") || strings.HasPrefix(value, ">"):
		case strings.HasPrefix(value, `"`) || strings.HasPrefix(value, "'"):
			return nil, fmt.Errorf("line %d: %s: a quoted expr; write it plain or as a | block, which this test reads", i+1, rule)
		case value == "":
			return nil, fmt.Errorf("line %d: %s: an empty expr", i+1, rule)
		default:
			body = append(body, value)
		}
		for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indent(lines[i+1]) > key) {
			i++
			body = append(body, strings.TrimSpace(lines[i]))
		}
		expr := strings.TrimSpace(strings.Join(body, "\n"))
		if expr == "" {
			return nil, fmt.Errorf("line %d: %s: an empty expr", i+1, rule)
		}
		qs = append(qs, query{rule, expr})
		exprs++
	}
	if exprs != rules {
		return nil, fmt.Errorf("%d rules and %d exprs", rules, exprs)
	}
	return qs, nil
}

// readMonitoring returns the file at path in monitoring/, or skips the
// test outside the repository (the metrics module's files alone, as a
// module cache holds them).
func readMonitoring(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Run from the module cache, as a dependency's tests, the module
		// has no monitoring/ beside it; in the repository, and in CI,
		// a missing file fails.
		if _, werr := os.Stat("../go.work"); errors.Is(werr, fs.ErrNotExist) && os.Getenv("CI") == "" {
			t.Skipf("%s: not in the repository", path)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMonitoringNamesExportedSeries: every series the dashboard's panels
// and variables and the alerting rules name is one the metrics package
// exports, with the labels and label values they match on.
func TestMonitoringNamesExportedSeries(t *testing.T) {
	ex := exportedSeries(t)
	dash := dashboardQueries(t, readMonitoring(t, dashboardFile))
	rules, err := ruleQueries(string(readMonitoring(t, alertsFile)))
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if len(dash) < 10 || len(rules) < 3 {
		t.Fatalf("read %d queries from %s and %d from %s: too few, the files were misread", len(dash), dashboardFile, len(rules), alertsFile)
	}
	named := map[string]bool{}
	for file, qs := range map[string][]query{dashboardFile: dash, alertsFile: rules} {
		for _, q := range qs {
			for _, p := range checkExpr(q.expr, ex) {
				t.Errorf("%s: %s: %s\n\t%s", file, q.where, p, q.expr)
			}
			for _, n := range identRE.FindAllString(blank(q.expr), -1) {
				if strings.HasPrefix(n, "resilience_") {
					named[n] = true
				}
			}
		}
	}
	t.Logf("%d dashboard queries and %d rules name %d series", len(dash), len(rules), len(named))
}

// TestMonitoringCheckCatchesMistakes: the check behind
// TestMonitoringNamesExportedSeries finds a misspelt series, a histogram
// named without its suffix, a label a series lacks wherever it appears,
// a label value a series never takes, and an expression it cannot check;
// and finds nothing wrong with correct ones.
func TestMonitoringCheckCatchesMistakes(t *testing.T) {
	ex := exportedSeries(t)
	for _, c := range []struct{ expr, want string }{
		{`resilience_circuit_breaker_stat{name="x"} == 1`, "series resilience_circuit_breaker_stat is not"},
		{`rate(resilience_retry_attempts[5m])`, "series resilience_retry_attempts is not"},
		{`rate(resilience_ratelimit_calls_total[5m])`, "series resilience_ratelimit_calls_total is not"},
		{`sum by (nme) (resilience_circuit_breaker_state)`, "has no label nme"},
		{`sum(rate(resilience_bulkhead_rejections_total[5m])) by (state)`, "has no label state"},
		{`max without (le) (resilience_retry_attempts_sum)`, "has no label le"},
		{`resilience_timeout_operations_total{reslt="timeout"}`, "has no label reslt"},
		{`resilience_timeout_operations_total{result="timeouts"}`, `result is never "timeouts"`},
		{`resilience_keyed_rate_limit_calls_total{result=~"rejected|ful"}`, `result is never "ful"`},
		{`resilience_keyed_breaker_calls_total{result!="caped"}`, `result is never "caped"`},
		{`resilience_bulkhead_in_use * on (tenant) resilience_bulkhead_max_concurrent`, "no series of the expression has a label tenant"},
		{`label_values(resilience_circuit_breaker_state, host)`, "has no label host"},
		{`sum({__name__=~"resilience_.+_calls_total"})`, "names no resilience_ series"},
		{`label_replace(resilience_chaos_calls_total, "x", "$1", "name", "(.*)")`, "label_replace"},
		{`resilience_chaos_calls_total{result="passed" name="x"}`, "cannot read the matchers"},
	} {
		got := checkExpr(c.expr, ex)
		if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("checkExpr(%s) = %q; want a problem with %q", c.expr, got, c.want)
		}
	}
	for _, expr := range []string{
		`histogram_quantile(0.9, sum by (job, name, le) (rate(resilience_circuit_breaker_open_duration_seconds_bucket{name=~"$name", le!="+Inf"}[5m])))`,
		`sum(rate(resilience_retry_attempts_count{result='success'}[5m])) by (name, result) # a resilience_comment`,
		`max without (state) (resilience_circuit_breaker_state{state=~"open|half-open", instance=~"$instance"}) == 1`,
		"resilience_keyed_breaker_ejected >= on (job, instance, name) resilience_keyed_breaker_ejection_limit{name=`x`}",
		`label_values(resilience_circuit_breaker_state{job=~"$job"}, name)`,
		`sum by (name, key) (resilience_keyed_breaker_key_state{state="open", key!="other"})`,
	} {
		if got := checkExpr(expr, ex); len(got) > 0 {
			t.Errorf("checkExpr(%s) = %q; want nothing wrong", expr, got)
		}
	}

	rules := `groups:
  - name: g
    rules:
      - alert: Plain
        expr: resilience_chaos_calls_total
          > 0
        for: 5m
      - record: "job:x"
        expr: |
          sum by (job) (
            resilience_chaos_calls_total
          )

        labels: {}
      - alert: Folded
        expr: >-
          resilience_bulkhead_in_use
`
	got, err := ruleQueries(rules)
	if err != nil {
		t.Fatal(err)
	}
	want := []query{
		{"alert Plain", "resilience_chaos_calls_total\n> 0"},
		{"record job:x", "sum by (job) (\nresilience_chaos_calls_total\n)"},
		{"alert Folded", "resilience_bulkhead_in_use"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ruleQueries = %q; want %q", got, want)
	}
	if _, err := ruleQueries("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'up'\n"); err == nil {
		t.Error("ruleQueries read a quoted expr")
	}
	if _, err := ruleQueries("groups:\n  - name: g\n    rules:\n      - alert: A\n        for: 5m\n      - alert: B\n        expr: up\n"); err == nil {
		t.Error("ruleQueries missed a rule without an expr")
	}
	if _, err := ruleQueries("groups:\n  - name: g\n    rules:\n      - expr: up\n        alert: A\n"); err == nil {
		t.Error("ruleQueries read a rule that begins with its expr")
	}
}
