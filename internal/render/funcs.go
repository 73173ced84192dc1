package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// denied are sprig's "hermetic" functions that are still random, read the
// clock or the local time zone, or cost too much per call (doc.go says why).
var denied = []string{
	"randInt", "shuffle", "bcrypt", "htpasswd", "encryptAES", "randBytes",
	"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
	"genSignedCert", "genSignedCertWithKey", "buildCustomCert",
	"ago", "toDate", "mustToDate", "unixEpoch", "derivePassword",
}

// mutating are the functions that change a map passed to them: the weight
// memo is dropped after each call.
var mutating = map[string]bool{
	"set": true, "unset": true, "merge": true, "mergeOverwrite": true,
	"mustMerge": true, "mustMergeOverwrite": true,
}

var sprigBase = func() template.FuncMap {
	m := sprig.HermeticTxtFuncMap()
	for _, n := range denied {
		delete(m, n)
	}
	return m
}()

// FuncNames lists every function a template may call (sprig's hermetic set
// less the denied ones, the overridden builtins and ours), sorted.
func FuncNames() []string {
	var out []string
	for n := range prototypeFuncs {
		if !strings.HasPrefix(n, "zester") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// prototypeFuncs is the function map templates are parsed with; each
// executor binds its own.
var prototypeFuncs = (&state{}).funcMap()

// Names of the functions the rewriter inserts.
const (
	fnStep      = "zesterStep"
	fnMissingOK = "zesterMissingOK"
	fnSettingOK = "zesterSettingOK"
	fnIndexOK   = "zesterIndexOK"
)

func (s *state) funcMap() template.FuncMap {
	m := make(template.FuncMap, len(sprigBase)+40)
	for name, fn := range sprigBase {
		m[name] = s.wrap(name, fn)
	}
	own := map[string]any{
		"secret":          s.secret,
		"setting":         s.setting,
		fnSettingOK:       s.settingOK,
		"basket":          s.basket,
		"default":         dfault,
		"index":           s.index,
		fnIndexOK:         s.indexOK,
		fnMissingOK:       missingOK,
		"repeat":          s.repeat,
		"until":           s.until,
		"untilStep":       s.untilStep,
		"seq":             s.seq,
		"indent":          s.indent,
		"nindent":         s.nindent,
		"replace":         s.replace,
		"regexReplaceAll": func(re, src, repl string) (string, error) { return s.regexReplace(re, src, repl, false) },
		"mustRegexReplaceAll": func(re, src, repl string) (string, error) {
			return s.regexReplace(re, src, repl, false)
		},
		"regexReplaceAllLiteral": func(re, src, repl string) (string, error) { return s.regexReplace(re, src, repl, true) },
		"mustRegexReplaceAllLiteral": func(re, src, repl string) (string, error) {
			return s.regexReplace(re, src, repl, true)
		},
		"wrapWith":         s.wrapWith,
		"printf":           s.printf,
		"print":            fmt.Sprint,
		"println":          fmt.Sprintln,
		"html":             template.HTMLEscaper,
		"js":               template.JSEscaper,
		"urlquery":         template.URLQueryEscaper,
		"toPrettyJson":     func(v any) (string, error) { return s.prettyJSON(v) },
		"mustToPrettyJson": func(v any) (string, error) { return s.prettyJSON(v) },
		"uniq":             s.uniq,
		"mustUniq":         s.uniq,
	}
	for name, fn := range own {
		m[name] = s.wrap(name, fn)
	}
	m[fnStep] = s.stepFn
	return m
}

// wrap binds fn to the execution: one step per call, the arguments' size
// checked before (an amplifying call on huge inputs is refused before it
// allocates) and the result's after, the memo dropped after a mutation.
// Errors are raised by panicking: text/template recovers a panic in a
// function call and reports it as that call's error, with its position.
func (s *state) wrap(name string, fn any) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	mut := mutating[name]
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		if err := s.step(1); err != nil {
			panic(err)
		}
		var in int64
		for _, a := range args {
			w, err := s.weigh(a)
			if err != nil {
				panic(err)
			}
			in += w.size
		}
		if in > 4*int64(s.lim.MaxOutput) {
			panic(&LimitError{What: "value", Limit: int64(s.lim.MaxOutput)})
		}
		var out []reflect.Value
		if t.IsVariadic() {
			out = v.CallSlice(args)
		} else {
			out = v.Call(args)
		}
		if mut {
			clear(s.memo)
		}
		if len(out) == 2 && !out[1].IsNil() {
			return out
		}
		if len(out) > 0 {
			w, err := s.weigh(out[0])
			if err != nil {
				panic(err)
			}
			if w.size > int64(s.lim.MaxOutput) {
				panic(&LimitError{What: "value", Limit: int64(s.lim.MaxOutput)})
			}
		}
		return out
	}).Interface()
}

func (s *state) stepFn() (string, error) { return "", s.step(1) }

// ErrNotSet is what a Funcs.Setting callback returns (wrapped) for a key
// that is not set; setting with a default then gives the default.
var ErrNotSet = errors.New("not set")

func (s *state) secret(token string) (secretArg, error) {
	if s.fns.Secret == nil {
		return s.addSecret(token, Masked), nil
	}
	plain, err := s.fns.Secret(token)
	if err != nil {
		return secretArg{}, err
	}
	return s.addSecret(token, plain), nil
}

func (s *state) setting(key string, def ...any) (any, error) {
	if len(def) > 1 {
		return nil, fmt.Errorf("%q: want at most one default, got %d", key, len(def))
	}
	if s.fns.Setting == nil {
		return nil, fmt.Errorf("%q: %w (no merged settings in this file)", key, ErrNoCallback)
	}
	v, err := s.fns.Setting(key)
	if err != nil {
		if errors.Is(err, ErrNotSet) && len(def) == 1 {
			return def[0], nil
		}
		return nil, err
	}
	return s.import_(v, 0)
}

func (s *state) settingOK(key string) (any, error) {
	v, err := s.setting(key, nil)
	if errors.Is(err, ErrNoCallback) {
		return nil, nil
	}
	return v, err
}

func (s *state) basket(target, name string) (map[string]any, error) {
	if s.fns.Basket == nil {
		return nil, fmt.Errorf("%q %q: %w", target, name, ErrNoCallback)
	}
	m, err := s.fns.Basket(target, name)
	if err != nil {
		return nil, err
	}
	v, err := s.import_(m, 0)
	if err != nil {
		return nil, err
	}
	out, _ := v.(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// import_ copies a value from outside the template (settings, basket) so
// the template cannot change the caller's data, turning Secret leaves into
// secrets of this execution and normalising numbers.
func (s *state) import_(v any, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, &LimitError{What: "depth", Limit: MaxDepth}
	}
	switch x := v.(type) {
	case Secret:
		return s.addSecret("", x.Reveal()), nil
	case map[string]any:
		if err := s.step(int64(len(x))); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, err := s.import_(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		if err := s.step(int64(len(x))); err != nil {
			return nil, err
		}
		l := make([]any, len(x))
		for i, e := range x {
			c, err := s.import_(e, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	case []string:
		return append([]string(nil), x...), nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		return m, nil
	}
	return Normalize(v), nil
}

// dfault is sprig's default: given when not empty, else d. The rewriter
// makes a missing key reach it as nil.
func dfault(d any, given ...any) any {
	if len(given) == 0 || empty(given[0]) {
		return d
	}
	return given[0]
}

// empty is sprig's notion of an empty value.
func empty(v any) bool {
	g := reflect.ValueOf(v)
	if !g.IsValid() {
		return true
	}
	switch g.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map, reflect.String:
		return g.Len() == 0
	case reflect.Bool:
		return !g.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return g.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return g.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return g.Float() == 0
	case reflect.Struct:
		return false
	case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Chan:
		return g.IsNil()
	}
	return false
}

// index is text/template's index, except that a missing map key is an
// error, as a missing field is.
func (s *state) index(item any, keys ...any) (any, error) { return s.doIndex(item, keys, true) }

func (s *state) indexOK(item any, keys ...any) (any, error) { return s.doIndex(item, keys, false) }

func (s *state) doIndex(item any, keys []any, strict bool) (any, error) {
	v := reflect.ValueOf(item)
	for _, k := range keys {
		for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
			if v.IsNil() {
				v = reflect.Value{}
				break
			}
			v = v.Elem()
		}
		if !v.IsValid() {
			if strict {
				return nil, fmt.Errorf("index of a missing value with %v", k)
			}
			return nil, nil
		}
		switch v.Kind() {
		case reflect.Map:
			kv := reflect.ValueOf(k)
			if !kv.IsValid() || !kv.Type().AssignableTo(v.Type().Key()) {
				if kv.IsValid() && kv.Type().ConvertibleTo(v.Type().Key()) && kv.Kind() == v.Type().Key().Kind() {
					kv = kv.Convert(v.Type().Key())
				} else {
					return nil, fmt.Errorf("key %v of type %T for a map with %s keys", k, k, v.Type().Key())
				}
			}
			e := v.MapIndex(kv)
			if !e.IsValid() {
				if strict {
					return nil, fmt.Errorf("no key %q (use default, or hasKey, for a key that may be missing)", fmt.Sprint(k))
				}
				return nil, nil
			}
			v = e
		case reflect.Slice, reflect.Array, reflect.String:
			i, ok := toIndex(k)
			if !ok {
				return nil, fmt.Errorf("%v is not an integer index", k)
			}
			if i < 0 || i >= v.Len() {
				if strict {
					return nil, fmt.Errorf("index out of range: %d (length %d)", i, v.Len())
				}
				return nil, nil
			}
			v = v.Index(i)
		default:
			if strict {
				return nil, fmt.Errorf("can't index a %s", v.Type())
			}
			return nil, nil
		}
	}
	if !v.IsValid() {
		return nil, nil
	}
	return v.Interface(), nil
}

func toIndex(k any) (int, bool) {
	v := reflect.ValueOf(k)
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(v.Uint()), true
	case reflect.Float64:
		f := v.Float()
		if f == float64(int(f)) {
			return int(f), true
		}
	}
	return 0, false
}

// missingOK follows keys from base through maps and gives nil where a key
// is missing or a value is not a map: the lenient lookup default gets.
func missingOK(base any, keys ...string) any {
	cur := base
	for _, k := range keys {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[k]
			if !ok {
				return nil
			}
			cur = v
		case map[string]string:
			v, ok := m[k]
			if !ok {
				return nil
			}
			cur = v
		default:
			rv := reflect.ValueOf(cur)
			if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
				return nil
			}
			e := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
			if !e.IsValid() {
				return nil
			}
			cur = e.Interface()
		}
	}
	return cur
}

func (s *state) capErr() error {
	return &LimitError{What: "value", Limit: int64(s.lim.MaxOutput)}
}

func (s *state) over(n int64) bool { return n < 0 || n > int64(s.lim.MaxOutput) }

func (s *state) repeat(count int, str string) (string, error) {
	if count < 0 {
		return "", fmt.Errorf("negative count %d", count)
	}
	if count > 0 && s.over(int64(len(str))*int64(count)) {
		return "", s.capErr()
	}
	return strings.Repeat(str, count), nil
}

// countRange is how many values untilStep(start, stop, step) yields.
func countRange(start, stop, step int) int64 {
	switch {
	case step > 0 && stop > start:
		return (int64(stop) - int64(start) + int64(step) - 1) / int64(step)
	case step < 0 && stop < start:
		return (int64(start) - int64(stop) + int64(-step) - 1) / int64(-step)
	}
	return 0
}

func (s *state) untilStep(start, stop, step int) ([]int, error) {
	n := countRange(start, stop, step)
	if s.over(n) {
		return nil, s.capErr()
	}
	out := make([]int, 0, n)
	if step > 0 {
		for i := start; i < stop; i += step {
			out = append(out, i)
		}
	} else if step < 0 {
		for i := start; i > stop; i += step {
			out = append(out, i)
		}
	}
	return out, nil
}

func (s *state) until(count int) ([]int, error) {
	step := 1
	if count < 0 {
		step = -1
	}
	return s.untilStep(0, count, step)
}

// seq is sprig's seq (bash's): seq END, seq START END, seq START STEP END.
func (s *state) seq(params ...int) (string, error) {
	var start, end, step int
	switch len(params) {
	case 1:
		start, end, step = 1, params[0], 1
		if end < start {
			step = -1
		}
	case 2:
		start, end, step = params[0], params[1], 1
		if end < start {
			step = -1
		}
	case 3:
		start, step, end = params[0], params[1], params[2]
		if end < start && step > 0 {
			return "", nil
		}
	default:
		return "", nil
	}
	inc := 1
	if end < start {
		inc = -1
	}
	l, err := s.untilStep(start, end+inc, step)
	if err != nil {
		return "", err
	}
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = fmt.Sprint(v)
	}
	out := strings.Join(parts, " ")
	if s.over(int64(len(out))) {
		return "", s.capErr()
	}
	return out, nil
}

func (s *state) indent(spaces int, v string) (string, error) {
	if spaces < 0 {
		return "", fmt.Errorf("negative width %d", spaces)
	}
	if s.over(int64(len(v)) + int64(spaces)*int64(strings.Count(v, "\n")+1)) {
		return "", s.capErr()
	}
	pad := strings.Repeat(" ", spaces)
	return pad + strings.ReplaceAll(v, "\n", "\n"+pad), nil
}

func (s *state) nindent(spaces int, v string) (string, error) {
	out, err := s.indent(spaces, v)
	return "\n" + out, err
}

func (s *state) replace(old, new, src string) (string, error) {
	n := int64(strings.Count(src, old))
	if s.over(int64(len(src)) + n*int64(len(new))) {
		return "", s.capErr()
	}
	return strings.ReplaceAll(src, old, new), nil
}

func (s *state) regexReplace(expr, src, repl string, literal bool) (string, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return "", err
	}
	n := int64(len(re.FindAllStringIndex(src, -1)))
	if err := s.step(n); err != nil {
		return "", err
	}
	bound := int64(len(src)) + n*int64(len(repl))
	if !literal {
		// Each $ reference inserts at most the whole source over all
		// matches (matches do not overlap).
		bound += int64(strings.Count(repl, "$")) * int64(len(src))
	}
	if s.over(bound) {
		return "", s.capErr()
	}
	if literal {
		return re.ReplaceAllLiteralString(src, repl), nil
	}
	return re.ReplaceAllString(src, repl), nil
}

func (s *state) wrapWith(l int, sep, str string) (string, error) {
	if l < 1 {
		l = 1
	}
	if s.over(int64(len(str)) + (int64(len(str))/int64(l)+1)*int64(len(sep))) {
		return "", s.capErr()
	}
	return sprigBase["wrapWith"].(func(int, string, string) string)(l, sep, str), nil
}

// printf checks the widths and precisions of the format before formatting
// (fmt allows up to 10^6 each).
func (s *state) printf(format string, args ...any) (string, error) {
	if s.over(int64(len(format)) + fmtPadding(format)) {
		return "", s.capErr()
	}
	return fmt.Sprintf(format, args...), nil
}

func fmtPadding(format string) int64 {
	const star = 1_000_000 // fmt's own bound on a width from an argument
	var total int64
	num := func(i int) (int64, int) {
		var n int64
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			if n < star {
				n = n*10 + int64(format[i]-'0')
			}
			i++
		}
		return min(n, star), i
	}
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+-# 0", format[i]) >= 0 {
			i++
		}
		if i < len(format) && format[i] == '*' {
			total += star
			i++
		} else {
			var w int64
			w, i = num(i)
			total += w
		}
		if i < len(format) && format[i] == '.' {
			i++
			if i < len(format) && format[i] == '*' {
				total += star
				i++
			} else {
				var p int64
				p, i = num(i)
				total += p
			}
		}
		if i >= len(format) {
			break
		}
	}
	return total
}

func (s *state) prettyJSON(v any) (string, error) {
	w, err := s.weigh(reflect.ValueOf(v))
	if err != nil {
		return "", err
	}
	if s.over(w.size * int64(2*w.depth+2)) {
		return "", s.capErr()
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// uniq removes repeated values in linear time for scalars (sprig's is
// quadratic); other values are compared with reflect.DeepEqual.
func (s *state) uniq(list any) ([]any, error) {
	v := reflect.ValueOf(list)
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return nil, fmt.Errorf("cannot find uniq on type %T", list)
	}
	seen := map[any]bool{}
	var others []any
	out := make([]any, 0, v.Len())
	for i := 0; i < v.Len(); i++ {
		e := v.Index(i).Interface()
		if e == nil || reflect.TypeOf(e).Comparable() {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
			continue
		}
		if err := s.step(int64(len(others))); err != nil {
			return nil, err
		}
		dup := false
		for _, o := range others {
			if reflect.DeepEqual(o, e) {
				dup = true
				break
			}
		}
		if !dup {
			others = append(others, e)
			out = append(out, e)
		}
	}
	return out, nil
}
