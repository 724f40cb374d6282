package model

import (
	"fmt"

	"github.com/kantofw/kanto/services/internal/config"
)

// Decode parses a container description in the internal JSON format. Syntax
// and type errors name the source, line and column and wrap ErrInvalid.
func Decode(source string, data []byte) (*Container, error) {
	c := new(Container)
	if err := config.Decode(source, data, c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c, nil
}
