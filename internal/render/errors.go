package render

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Error is a template error at a place in a file. Line and Col are 1-based;
// 0 means unknown.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
	// Err is the cause when there is one (a callback's error, a
	// *LimitError); Unwrap returns it.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrLimit is wrapped by every *LimitError.
var ErrLimit = errors.New("render limit")

// LimitError says which bound an execution hit.
type LimitError struct {
	What  string // "output", "steps", "time", "value", "depth"
	Limit int64  // bytes, steps, nodes or depth; nanoseconds for time
}

func (e *LimitError) Error() string {
	switch e.What {
	case "output":
		return fmt.Sprintf("output over the limit of %d bytes", e.Limit)
	case "steps":
		return fmt.Sprintf("over the limit of %d steps (loop iterations, function calls and values examined): a loop that does not end, or too much work for one peel", e.Limit)
	case "time":
		return fmt.Sprintf("rendering took longer than %s", time.Duration(e.Limit))
	case "value":
		return fmt.Sprintf("a value over the limit of %d bytes", e.Limit)
	case "depth":
		return fmt.Sprintf("a value nested more than %d levels deep", e.Limit)
	case "cycle":
		return "a value that contains itself"
	}
	return fmt.Sprintf("%s over the limit of %d", e.What, e.Limit)
}

func (e *LimitError) Unwrap() error { return ErrLimit }

var (
	// template: NAME:LINE:COL: executing "NAME" at <CTX>: MSG
	execRe = regexp.MustCompile(`(?s)^template: (.*?):(\d+):(\d+): executing "(?:[^"]*)" at <(.*?)>: (.*)$`)
	// template: NAME:LINE:COL: MSG (errors of the exec state without a node context)
	execNoCtxRe = regexp.MustCompile(`(?s)^template: (.*?):(\d+):(\d+): (.*)$`)
	// template: NAME:LINE: MSG (parse errors)
	parseRe = regexp.MustCompile(`(?s)^template: (.*?):(\d+): (.*)$`)
	quoted  = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// execError turns an error of template.Execute into an *Error for file.
func execError(file string, err error) error {
	var le *LimitError
	isLimit := errors.As(err, &le)
	var ee template.ExecError
	if !errors.As(err, &ee) {
		// A write error (the output cap) comes back bare: text/template
		// strips its wrapper and knows no position.
		msg := err.Error()
		if isLimit {
			msg = le.Error()
		}
		return &Error{File: file, Msg: msg, Err: cause(err)}
	}
	msg := ee.Err.Error()
	if m := execRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		ctx, text := m[4], m[5]
		if isLimit {
			return &Error{File: file, Line: line, Col: col + 1, Msg: le.Error(), Err: le}
		}
		text = strings.TrimPrefix(text, "error calling ")
		return &Error{File: file, Line: line, Col: col + 1, Msg: explain(ctx, text), Err: cause(ee.Err)}
	}
	if m := execNoCtxRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		return &Error{File: file, Line: line, Col: col + 1, Msg: m[4], Err: cause(ee.Err)}
	}
	return &Error{File: file, Msg: msg, Err: cause(ee.Err)}
}

// cause is the error an *Error wraps: the limit when one was hit, else the
// whole chain (text/template wraps a callback's error with %w, so
// errors.Is finds it).
func cause(err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return le
	}
	return err
}

// explain rewrites text/template's wording into what a settings author can
// act on.
func explain(ctx, text string) string {
	if r := []rune(ctx); len(r) > 40 {
		ctx = string(r[:40]) + "…"
	}
	switch {
	case strings.HasPrefix(text, "map has no entry for key "):
		return fmt.Sprintf("%s: no key %s (use default, or hasKey, for a key that may be missing)", ctx, strings.TrimPrefix(text, "map has no entry for key "))
	case strings.HasPrefix(text, "nil data; no entry for key "):
		return fmt.Sprintf("%s: no key %s (use default for a key that may be missing)", ctx, strings.TrimPrefix(text, "nil data; no entry for key "))
	case strings.Contains(text, "got render.secretArg"):
		fn, _, _ := strings.Cut(text, ":")
		if strings.HasPrefix(text, "wrong type") {
			fn = ctx
		}
		return fmt.Sprintf("%s: a secret cannot be read, compared or changed by a template, only placed; seal the value you need as its own token (at <%s>)", fn, ctx)
	case strings.Contains(text, "secretArg"):
		return fmt.Sprintf("a secret cannot be read, compared or changed by a template, only placed (at <%s>)", ctx)
	}
	return fmt.Sprintf("%s (at <%s>)", text, ctx)
}

// parseError turns an error of template.Parse into an *Error for file;
// src finds the column when the message quotes a token.
func parseError(file string, src []byte, err error) error {
	msg := err.Error()
	m := parseRe.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Msg: strings.TrimPrefix(msg, "template: "), Err: err}
	}
	line, _ := strconv.Atoi(m[2])
	text := m[3]
	return &Error{File: file, Line: line, Col: findColumn(src, line, text), Msg: text}
}

// findColumn returns the 1-based column on line of the first token the
// message quotes, or 0.
func findColumn(src []byte, line int, msg string) int {
	lines := strings.Split(string(src), "\n")
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	for _, q := range quoted.FindAllStringSubmatch(msg, -1) {
		tok, err := strconv.Unquote(`"` + q[1] + `"`)
		if err != nil || tok == "" {
			continue
		}
		// Search inside actions first: a function name also found in
		// the text around them would give the wrong column.
		if i := indexInAction(l, tok); i >= 0 {
			return runeCol(l, i)
		}
		if i := strings.Index(l, tok); i >= 0 {
			return runeCol(l, i)
		}
	}
	return 0
}

func indexInAction(line, tok string) int {
	off := 0
	for {
		s := strings.Index(line[off:], "{{")
		if s < 0 {
			return -1
		}
		s += off
		e := strings.Index(line[s:], "}}")
		end := len(line)
		if e >= 0 {
			end = s + e
		}
		if i := strings.Index(line[s:end], tok); i >= 0 {
			return s + i
		}
		if e < 0 {
			return -1
		}
		off = end
	}
}

func runeCol(s string, byteOff int) int {
	return len([]rune(s[:byteOff])) + 1
}
