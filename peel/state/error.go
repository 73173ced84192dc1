package state

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/zester-io/zester/internal/render"
)

// Pos is a place in the state tree.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	switch {
	case p.Line > 0 && p.Col > 0:
		return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
	case p.Line > 0:
		return p.File + ":" + strconv.Itoa(p.Line)
	}
	return p.File
}

// Error is a problem in the state tree at a place.
type Error struct {
	Pos
	Msg string
	// Err is the cause (a render error, a file system error).
	Err error
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func (e *Error) Unwrap() error { return e.Err }

func errAt(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// fromRender keeps a render error's position as ours.
func fromRender(err error) error {
	var re *render.Error
	if errors.As(err, &re) {
		return &Error{Pos: Pos{File: re.File, Line: re.Line, Col: re.Col}, Msg: re.Msg, Err: err}
	}
	return err
}

// maxErrors bounds how many errors one compile reports: enough to fix a
// tree in one pass, not a wall of text when a file is broken throughout.
const maxErrors = 20

type errList struct{ errs []error }

func (l *errList) add(err error) {
	if err != nil && len(l.errs) < maxErrors {
		l.errs = append(l.errs, err)
	}
}

func (l *errList) err() error { return errors.Join(l.errs...) }
