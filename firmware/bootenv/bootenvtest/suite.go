package bootenvtest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
)

// StoreSuite is the conformance suite of bootenv.Store. newStore returns a
// fresh store holding a valid, empty-or-initial environment; open returns
// another handle on the same environment (as a second process would).
func StoreSuite(t *testing.T, newStore func(t *testing.T) (store bootenv.Store, open func() bootenv.Store)) {
	t.Run("write then read", func(t *testing.T) {
		s, _ := newStore(t)
		if err := s.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "path": "a=b c"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Read()
		if err != nil {
			t.Fatal(err)
		}
		if got["ORDER"] != "A B" || got["A_OK"] != "1" || got["path"] != "a=b c" {
			t.Fatalf("read %q", got)
		}
	})
	t.Run("merge and delete", func(t *testing.T) {
		s, _ := newStore(t)
		if err := s.Write(map[string]string{"X": "1", "Y": "2"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(map[string]string{"Y": "", "Z": "3"}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Read()
		if got["X"] != "1" || got["Z"] != "3" {
			t.Fatalf("merge lost keys: %q", got)
		}
		if _, ok := got["Y"]; ok {
			t.Fatalf("Y not deleted: %q", got)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		s, _ := newStore(t)
		for _, k := range []string{"", "a=b", "a\nb"} {
			if err := s.Write(map[string]string{k: "1"}); !errors.Is(err, bootenv.ErrInvalid) {
				t.Errorf("key %q: %v", k, err)
			}
		}
	})
	t.Run("too large keeps the old env", func(t *testing.T) {
		s, _ := newStore(t)
		if err := s.Write(map[string]string{"KEEP": "1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(map[string]string{"BIG": strings.Repeat("x", 1<<20)}); !errors.Is(err, bootenv.ErrTooLarge) {
			t.Fatalf("1 MiB value: %v", err)
		}
		got, err := s.Read()
		if err != nil || got["KEEP"] != "1" || got["BIG"] != "" {
			t.Fatalf("after a refused write: %q %v", got, err)
		}
	})
	t.Run("concurrent writers lose nothing", func(t *testing.T) {
		_, open := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := open() // its own handle, as another process
				for i := range 5 {
					if err := s.Write(map[string]string{fmt.Sprintf("W%d_%d", w, i): "1"}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := open().Read()
		if err != nil {
			t.Fatal(err)
		}
		for w := range 4 {
			for i := range 5 {
				if got[fmt.Sprintf("W%d_%d", w, i)] != "1" {
					t.Fatalf("lost W%d_%d: %q", w, i, got)
				}
			}
		}
	})
}
