package master

import "context"

// BasketLookup is basketLookup, for the external tests.
func (m *Master) BasketLookup(ctx context.Context, target, name string) (map[string]any, error) {
	return m.basketLookup(ctx, target, name)
}
