package funcs

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// noArgs is the argument struct of functions without arguments: {} and null
// are accepted, any field is rejected.
type noArgs struct{}

func testPing(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a noArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	return true, nil
}

func testEcho(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Text string `json:"text"`
	}
	if err := decodeArgs(args, &a, "text"); err != nil {
		return nil, err
	}
	return a.Text, nil
}

func testSleep(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Seconds *Duration `json:"seconds"`
	}
	if err := decodeArgs(args, &a, "seconds"); err != nil {
		return nil, err
	}
	if a.Seconds == nil {
		return nil, badArgs("argument \"seconds\" is required")
	}
	t := time.NewTimer(time.Duration(*a.Seconds))
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func factsGet(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Path string `json:"path"`
	}
	if err := decodeArgs(args, &a, "path"); err != nil {
		return nil, err
	}
	if env.Facts == nil {
		return nil, errorf(CodeFailed, "facts are not available in this agent")
	}
	facts, err := env.Facts(ctx, false)
	if err != nil {
		return nil, err
	}
	if a.Path == "" {
		return facts, nil
	}
	return lookupPath(facts, "path", a.Path)
}

func factsRefresh(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a noArgs
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	if env.Facts == nil {
		return nil, errorf(CodeFailed, "facts are not available in this agent")
	}
	return env.Facts(ctx, true)
}

// lookupPath narrows v to the value at the ':'-separated path. Maps are
// indexed by key, lists by decimal index. Arbitrary Go values (structs) are
// first normalised through JSON.
func lookupPath(v any, arg, path string) (any, error) {
	cur, err := normalize(v)
	if err != nil {
		return nil, errorf(CodeFailed, "not JSON-representable: %v", err)
	}
	parts := strings.Split(path, ":")
	for i, key := range parts {
		walked := strings.Join(parts[:i], ":")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[key]
			if !ok {
				keys := slices.Sorted(maps.Keys(c))
				if len(keys) > 50 {
					keys = append(keys[:50], "...")
				}
				return nil, badArgs("argument %q: %q not found at %q (available: %s)",
					arg, key, walked, strings.Join(keys, ", "))
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(key)
			if err != nil || n < 0 || n >= len(c) {
				return nil, badArgs("argument %q: %q is not a valid index at %q (list of %d)",
					arg, key, walked, len(c))
			}
			cur = c[n]
		default:
			return nil, badArgs("argument %q: cannot descend into %q at %q: not an object or list",
				arg, key, walked)
		}
	}
	return cur, nil
}

func normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}
