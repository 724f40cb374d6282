package model

import (
	"errors"
	"fmt"
)

// Error categories. Callers check them with errors.Is; the gRPC layer maps
// them to status codes while keeping upstream's message text.
var (
	// ErrInvalid: the request or configuration breaks a validation rule.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: no container with the given id.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the id or name is taken.
	ErrConflict = errors.New("conflict")
	// ErrState: the operation is not allowed in the container's state.
	ErrState = errors.New("wrong state")
)

// kindError carries an upstream message verbatim and a category.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Errorf returns an error whose text is exactly the formatted message (as
// upstream clients expect) and which matches kind with errors.Is.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) error { return Errorf(ErrInvalid, format, args...) }
