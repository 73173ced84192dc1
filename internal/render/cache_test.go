package render_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/zester-io/zester/internal/render"
)

// A file whose texts never repeat stops being added after its trial; one
// whose texts repeat is served from the cache, with the same documents a
// plain decode gives.
func TestDecodeCache_KeepsWhatRepeats(t *testing.T) {
	c := render.NewDecodeCache(64 << 20)
	tp, err := render.Parse("t.zy", []byte("id: {{ .id }}\nrole: {{ .facts.role }}\n"))
	if err != nil {
		t.Fatal(err)
	}
	decode := func(file, id, role string) *render.Node {
		out, err := tp.Execute(context.Background(), render.Data{ID: id, Facts: map[string]any{"role": role}}, render.Funcs{}, render.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := c.Decode(file, out, 0)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := render.Decode(file, out, 0)
		if !reflect.DeepEqual(n, want) {
			t.Fatalf("%s %s: cached %+v, decoded %+v", file, id, n, want)
		}
		return n
	}
	for i := range 2000 {
		decode("unique.zy", fmt.Sprintf("peel%d", i), "web")
	}
	if n := c.Len(); n > 300 {
		t.Errorf("%d documents held for a file whose texts never repeat", n)
	}
	before := c.Len()
	for i := range 2000 {
		decode("shared.zy", "peel", fmt.Sprint(i%5))
	}
	if n := c.Len() - before; n != 5 {
		t.Errorf("%d documents held for 5 distinct texts", n)
	}
}
