package target

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzGroups are the nodegroups FuzzParse parses with.
var fuzzGroups = map[string]string{
	"g":     "web* or G@os:Debian",
	"h":     "not N@g and S@10.0.0.0/8",
	"loop":  "N@loop2",
	"loop2": "a or N@loop",
	"bad":   "( x",
	"bs":    `a\`,
	"re":    `E@\Qa\ or P@k:v:\Qw\`,
	"sp":    `G@os:Red\ Hat or L@x),y`,
}

// fuzzSubjects are odd on purpose: ids and fact values with the
// characters the lexer and the renderer have to take care of.
func fuzzSubjects() []*MapSubject {
	odd := []string{"web1", "db2", "and", "a b", "(x)", "x)", "G@os:x", "é", "K", "[", "a\\b", "not(x", `a\`, "Qa\\"}
	var subs []*MapSubject
	for i, id := range odd {
		subs = append(subs, &MapSubject{PeelID: id, Facts: map[string]any{
			"os":    []string{"Debian", "Ubuntu", "Red Hat", "a)", "(b", "x:y", "", "K", "\\", "v\\", "a b)"}[i%11],
			"roles": []any{id, "web", float64(i)},
			"k":     map[string]any{"v": id, "w": map[string]any{"x": "1:2"}},
			"a":     map[string]any{"(b": "c)", "b c": "d e", "": "empty"},
			"n":     []any{map[string]any{"m": true}, nil},
			"network": map[string]any{"addresses": []any{
				netip.AddrFrom4([4]byte{10, byte(i), 0, 1}).String(),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}).String(),
			}},
		}, Settings: map[string]any{"role": id, "k": map[string]any{"v": []any{"x", id}}}})
	}
	return append(subs, &MapSubject{PeelID: ""}, &MapSubject{PeelID: "web1.example.com", Facts: map[string]any{"os": "debian"}})
}

func checkErr(t *testing.T, expr string, err error) {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("Parse(%q): error %v is not an *Error", expr, err)
	}
	if te.Expr != expr || te.Column < 1 || te.Column > utf8.RuneCountInString(expr)+1 || te.Msg == "" {
		t.Fatalf("Parse(%q): bad error %#v", expr, te)
	}
}

// checkRoundTrip asserts the rendering of e reparses (as compound,
// without nodegroups) to an expression with the same matches and the
// same rendering.
func checkRoundTrip(t *testing.T, subs []*MapSubject, expr string, e Expr) {
	t.Helper()
	s := e.String()
	e2, err := Parse(KindCompound, s, Options{})
	if err != nil {
		t.Fatalf("Parse(%q) renders as %q, which does not parse: %v", expr, s, err)
	}
	for _, sub := range subs {
		if m1, m2 := e.Match(sub), e2.Match(sub); m1 != m2 {
			t.Fatalf("Parse(%q) renders as %q; on peel %q they match %v and %v", expr, s, sub.PeelID, m1, m2)
		}
	}
	if s2 := e2.String(); s2 != s {
		t.Fatalf("Parse(%q) renders as %q, which renders as %q", expr, s, s2)
	}
	if e.IDOnly() != e2.IDOnly() {
		t.Fatalf("Parse(%q): IDOnly %v, reparsed %v", expr, e.IDOnly(), e2.IDOnly())
	}
	if ids, ok := IDs(e); ok {
		for _, sub := range subs {
			if e.Match(sub) != slices.Contains(ids, sub.PeelID) {
				t.Fatalf("Parse(%q): IDs %q disagree with Match on %q", expr, ids, sub.PeelID)
			}
		}
	}
}

var fuzzSeeds = []string{
	"G@os:Debian and web* or L@db1,db2",
	`not G@os:Debian and ( E@web\d+ or S@10.0.0.0/8 )`,
	`not G@os:Debian and (E@web(1|2) or S@10.0.0.0/8)`,
	"N@g or N@h",
	"N@loop",
	"web[1-3] or db? and not [!a]*",
	"G%@k%w%x%1:2 or P@k:w:x:1:.",
	`G@a:b\ c:d\ e or G@os:Red\ Hat`,
	"(G@a:(b) or x)) or L@a,b",
	`E@\Qa)\E or P@os:(?:a|b)`,
	"a not b not ( c or d )",
	`(a\) and b`,
	`N@bs and N@re and N@sp`,
	`E@\Qa\ b or G@os:x\\`,
	`(G@os:v\) or (L@a\)`,
	"X@foo",
	"I@role:web* and not I%@k%v%x",
	"I@k:v:( or G@os:x",
	"( web* ",
	"web* and",
	"",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	subs := fuzzSubjects()
	opt := Options{Nodegroups: fuzzGroups}
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Parse(KindCompound, expr, opt)
		if err != nil {
			checkErr(t, expr, err)
			return
		}
		checkRoundTrip(t, subs, expr, e)
	})
}

var fuzzKinds = []Kind{KindGlob, KindList, KindPCRE, KindFact, KindFactPCRE, KindIPCIDR, KindNodegroup, KindCompound, KindSettings}

// FuzzParseKinds does the same for every kind, whose rendering has to
// turn, for instance, spaces and stray parentheses into compound syntax.
func FuzzParseKinds(f *testing.F) {
	for i, s := range []string{"a b*", "a,b)", "a b", "os:Red Hat*", "os:(?:a b)", "10.0.0.0/8", "g", "and", "k:v)",
		`a\`, `a,b\`, `\Qa b`, `os:\Qa\`, `(a\) and b`, `os:a b\`, `x)`, `k:a:b c`} {
		f.Add(uint8(i), s)
	}
	subs := fuzzSubjects()
	opt := Options{Nodegroups: fuzzGroups}
	f.Fuzz(func(t *testing.T, k uint8, expr string) {
		kind := fuzzKinds[int(k)%len(fuzzKinds)]
		e, err := Parse(kind, expr, opt)
		if err != nil {
			checkErr(t, expr, err)
			return
		}
		checkRoundTrip(t, subs, expr, e)
	})
}
