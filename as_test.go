package resilience

import (
	"errors"
	"fmt"
	"testing"
)

type asTarget struct{ n int }

func (e *asTarget) Error() string { return fmt.Sprint("target ", e.n) }

// converts is an error that is not an *asTarget but says, through its As
// method, that it can stand for one.
type converts struct{}

func (converts) Error() string { return "converts" }
func (converts) As(target any) bool {
	if p, ok := target.(**asTarget); ok {
		*p = &asTarget{n: 7}
		return true
	}
	return false
}

// TestAsAgreesWithErrorsAs: as finds what errors.As finds, in every shape
// of tree, and allocates nothing where no As method is met.
func TestAsAgreesWithErrorsAs(t *testing.T) {
	one := &asTarget{n: 1}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"nil", nil},
		{"itself", one},
		{"another error", errors.New("x")},
		{"wrapped", fmt.Errorf("a: %w", one)},
		{"wrapped twice", fmt.Errorf("b: %w", fmt.Errorf("a: %w", one))},
		{"joined, second", errors.Join(errors.New("x"), one)},
		{"joined, nested", errors.Join(errors.New("x"), fmt.Errorf("a: %w", errors.Join(errors.New("y"), one)))},
		{"two wrapped at once", fmt.Errorf("%w and %w", errors.New("x"), one)},
		{"an As method", fmt.Errorf("a: %w", converts{})},
		{"an As method before the target", fmt.Errorf("a: %w", errors.Join(converts{}, one))},
		{"not found in a tree", errors.Join(errors.New("x"), fmt.Errorf("y: %w", errors.New("z")))},
	} {
		var want *asTarget
		wantOK := errors.As(tc.err, &want)
		got, ok := as[*asTarget](tc.err)
		if ok != wantOK || (ok && got.n != want.n) {
			t.Errorf("%s: as = %v, %v; errors.As = %v, %v", tc.name, got, ok, want, wantOK)
		}
	}
	deep := fmt.Errorf("b: %w", errors.Join(errors.New("x"), one))
	if n := testing.AllocsPerRun(100, func() { as[*asTarget](deep) }); n != 0 {
		t.Errorf("as allocates %v times, want 0", n)
	}
}
