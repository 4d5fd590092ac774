package consulclient

import (
	"errors"
	"fmt"
	"slices"
)

// MaxErrsShown caps how many per-service errors one Apply error spells out.
const MaxErrsShown = 5

// JoinCapped joins the first max errors and counts the rest; errors.Is/As
// see only the joined ones.
func JoinCapped(errs []error, max int) error {
	if len(errs) <= max {
		return errors.Join(errs...)
	}
	shown := slices.Clone(errs[:max])
	return errors.Join(append(shown, fmt.Errorf("... and %d more", len(errs)-max))...)
}
