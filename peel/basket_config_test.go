package peel_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/peel"
)

// peel.yaml's basket: the short and the long form, and bad entries named by
// key.
func TestConfig_Basket(t *testing.T) {
	c, err := peel.ParseConfig([]byte(`
id: web1
basket:
  ipv4: network.ipv4
  alive: test.ping
  up:
    function: cmd.run
    args: ["uptime -p"]
  named:
    function: test.echo
    args: {text: hi}
basket_interval: 30s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ipv4": "network.ipv4|", "alive": "test.ping|", "up": `cmd.run|["uptime -p"]`, "named": `test.echo|{"text":"hi"}`}
	for name, w := range want {
		s := c.Basket[name]
		if got := s.Function + "|" + string(s.Args); got != w {
			t.Errorf("basket.%s = %s, want %s", name, got, w)
		}
	}
	if c.BasketInterval.D().String() != "30s" || c.BasketMaxValue.N() != 64<<10 {
		t.Errorf("interval %s, max value %d", c.BasketInterval.D(), c.BasketMaxValue.N())
	}
	for _, tc := range []struct{ yaml, want string }{
		{"basket: {bad.name: test.ping}", `invalid basket name "bad.name"`},
		{"basket: {x: {function: test.ping, arg: [1]}}", "want a function name or {function: NAME, args: [...]}"},
		{"basket: {x: {args: [1]}}", "config key basket.x: no function"},
		{"basket: {x: 'rm -rf'}", `config key basket.x: function "rm -rf"`},
		{"basket: {x: basket.get}", "basket.get cannot fill a basket entry"},
		{"basket_interval: 10ms", "config key basket_interval: 10ms: want 1s to 24h0m0s"},
		{"basket_max_value: 10MiB", "config key basket_max_value"},
	} {
		_, err := peel.ParseConfig([]byte("id: web1\n" + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// An unknown function is refused at New, where the registry is known.
	c, err = peel.ParseConfig([]byte("id: web1\nbasket: {x: network.ipv5}\ninsecure: true\ndata_dir: " + t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peel.New(c, peel.Options{NoHTTP: true}); err == nil || !strings.Contains(err.Error(), `config key basket.x: unknown function "network.ipv5"`) {
		t.Fatalf("unknown function: %v", err)
	}
}

// FuzzConfig_Basket feeds peel.yaml's basket map arbitrary YAML (seeds in
// testdata/fuzz/FuzzConfig_Basket). The property: the parser never panics,
// and what it accepts is what the publisher relies on: valid entry names, a
// function, and args that are JSON.
func FuzzConfig_Basket(f *testing.F) {
	f.Add("basket: {ipv4: network.ipv4}")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := peel.ParseConfig([]byte("id: web1\n" + in))
		if err != nil {
			return
		}
		for name, s := range c.Basket {
			if err := names.ValidateBasketName(name); err != nil {
				t.Fatalf("accepted %q: %v", name, err)
			}
			if s.Function == "" || len(s.Args) > 0 && !json.Valid(s.Args) {
				t.Fatalf("accepted %s: %+v", name, s)
			}
		}
	})
}
