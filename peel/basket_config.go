package peel

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/zester-io/zester/internal/names"
)

// BasketSpec is one basket entry a peel publishes: the function whose
// result is the entry's value, and its arguments. In peel.yaml it is either
// a function name or a map:
//
//	basket:
//	  ipv4: network.ipv4
//	  alive: test.ping
//	  uptime:
//	    function: cmd.run
//	    args: ["uptime -p"]          # or a map: {cmd: "uptime -p"}
type BasketSpec struct {
	Function string `json:"function"`
	// Args are the function's arguments as a job would carry them (a
	// JSON array of positional values or an object); nil for none.
	Args json.RawMessage `json:"args,omitempty"`
}

// UnmarshalYAML reads the short form (a function name) or the long form
// ({function, args}).
func (s *BasketSpec) UnmarshalYAML(b []byte) error {
	var fn string
	if err := yaml.Unmarshal(b, &fn); err == nil {
		*s = BasketSpec{Function: fn}
		return nil
	}
	var long struct {
		Function string `yaml:"function"`
		Args     any    `yaml:"args"`
	}
	if err := yaml.UnmarshalWithOptions(b, &long, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return fmt.Errorf("want a function name or {function: NAME, args: [...]}: %s", yaml.FormatError(err, false, false))
	}
	*s = BasketSpec{Function: long.Function}
	if long.Args != nil {
		a, err := json.Marshal(jsonable(long.Args))
		if err != nil {
			return fmt.Errorf("args: %w", err)
		}
		s.Args = a
	}
	return nil
}

// jsonable turns the maps YAML decodes (map[string]any, or map[any]any
// for non-string keys) into what encoding/json takes.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	}
	return v
}

// Basket bounds.
const (
	minBasketInterval = time.Second
	maxBasketInterval = 24 * time.Hour
	minBasketValue    = 1 << 10
	maxBasketValue    = 512 << 10
	// maxBasketEntries bounds the entries of one peel (peel.yaml and
	// settings together): each is a key, a function run every interval.
	maxBasketEntries = 64
)

// validateBasketSpecs checks entry names and functions (not whether the
// function exists: the registry knows, see checkBasketFuncs), reporting
// each problem with the key where+"."+name.
func validateBasketSpecs(where string, specs map[string]BasketSpec, bad func(key, format string, a ...any)) {
	if len(specs) > maxBasketEntries {
		bad(where, "%d entries, at most %d", len(specs), maxBasketEntries)
	}
	for _, name := range sortedKeys(specs) {
		s := specs[name]
		key := where + "." + name
		if err := names.ValidateBasketName(name); err != nil {
			bad(where, "%v", err)
			continue
		}
		switch {
		case s.Function == "":
			bad(key, "no function")
		case strings.Trim(s.Function, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._") != "":
			bad(key, "function %q: only letters, digits, '.' and '_'", s.Function)
		case s.Function == "basket.get":
			// Every peel asking the masters every interval, for data the
			// asking peel can read when it needs it.
			bad(key, "basket.get cannot fill a basket entry")
		}
		if len(s.Args) > 0 && !json.Valid(s.Args) {
			bad(key, "args: not valid JSON")
		}
	}
}

// validateBasket is Validate's part for the basket keys.
func (c *Config) validateBasket(bad func(key, format string, a ...any)) {
	if err := c.BasketInterval.Err(); err != nil {
		bad("basket_interval", "%v", err)
	} else if d := c.BasketInterval.D(); d < minBasketInterval || d > maxBasketInterval {
		bad("basket_interval", "%s: want %s to %s", d, minBasketInterval, maxBasketInterval)
	}
	if err := c.BasketMaxValue.Err(); err != nil {
		bad("basket_max_value", "%v", err)
	} else if n := c.BasketMaxValue.N(); n < minBasketValue || n > maxBasketValue {
		bad("basket_max_value", "%d: want %d (1 KiB) to %d (512 KiB)", n, minBasketValue, maxBasketValue)
	}
	validateBasketSpecs("basket", c.Basket, bad)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
