package topology

import (
	"fmt"
	"testing"
)

func TestDbgGen(t *testing.T) {
	for _, o := range []GenOptions{
		{Kind: "leaf", LeafRemotes: []string{"hub.example.com:7422"}, Leafs: 1},
		{Kind: "supercluster", Gateways: map[string][]string{"hub": {"h1:7222", "h2:7222"}, "east": {"e1:7222"}}, Leafs: 1},
	} {
		files, err := Generate(o)
		if err != nil {
			t.Fatal(err)
		}
		for n, c := range files {
			fmt.Printf("===== %s\n%s", n, c)
		}
	}
}
