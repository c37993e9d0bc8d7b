package policies

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one validation problem at a position in the policy file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

// Error formats the problem as FILE:LINE:COL: message, the form editors and
// CI annotations understand.
//
// A problem with no position (Line 0: a file that cannot be read at all)
// is FILE: message.
func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every validation problem of a file, sorted by position.
type ErrorList []*Error

// Error returns one FILE:LINE:COL: message line per problem.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sorted orders the list by position and drops exact repeats (an aliased
// node is walked once per alias). The sort is stable so that two problems
// found at the same node keep the order they were found in.
func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Col, b.Col)
	})
	return slices.CompactFunc(l, func(a, b *Error) bool { return *a == *b })
}

// within moves positions past the input's last line onto it: yaml.v3 puts
// a node that ends the input (the null document of a file holding only
// "---") on the line after it, and a FILE:LINE:COL must point into the file.
func (l ErrorList) within(lines int) ErrorList {
	for _, e := range l {
		if e.Line > lines {
			e.Line, e.Col = lines, 1
		}
	}
	return l
}
