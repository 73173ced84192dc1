package target

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fleet is a small set of peels used by the table tests.
func fleet() []*MapSubject {
	return []*MapSubject{
		{PeelID: "web1.example.com", Facts: map[string]any{
			"os": "Debian", "os_family": "Debian", "num_cpus": float64(4), "virtual": false,
			"osfullname": "Debian GNU/Linux",
			"roles":      []any{"web", "cache"},
			"kernel":     map[string]any{"release": "6.1.0-18-amd64"},
			"network": map[string]any{
				"addresses":  []any{"10.0.0.5", "fe80::1%eth0", "garbage"},
				"interfaces": map[string]any{"eth0": map[string]any{"ipv4": []any{"10.0.0.5"}}},
			},
			"hwaddr_interfaces": map[string]any{"eth0": "52:54:00:12:34:56"},
			"disks":             []any{map[string]any{"name": "sda", "size": json.Number("512")}},
		}, Settings: map[string]any{"role": "web", "db": map[string]any{"password": "<secret>"}, "pkgs": []any{"nginx", "vim"}}},
		{PeelID: "web2.example.com", Facts: map[string]any{
			"os": "Ubuntu", "os_family": "Debian", "num_cpus": float64(8),
			"osfullname": "Ubuntu",
			"roles":      []any{"web"},
			"network":    map[string]any{"addresses": []any{"10.1.0.7/16", "2001:db8::7"}},
		}},
		{PeelID: "web10", Facts: map[string]any{"os": "Debian", "roles": []any{}}, Settings: map[string]any{"role": "Web-Canary"}},
		{PeelID: "db1", Facts: map[string]any{
			"os": "Debian", "os_family": "Debian", "osfullname": "Red Hat Enterprise Linux",
			"roles":   []any{"db"},
			"network": map[string]any{"addresses": []any{"192.168.1.10"}},
		}},
		{PeelID: "db2", Facts: map[string]any{"os": "CentOS", "os_family": "RedHat", "roles": "db"},
			Addresses: []netip.Addr{netip.MustParseAddr("10.2.3.4"), netip.MustParseAddr("::ffff:172.16.0.1")}},
		{PeelID: "and", Facts: map[string]any{}},
	}
}

func matching(e Expr, subs []*MapSubject) []string {
	var ids []string
	for _, s := range subs {
		if e.Match(s) {
			ids = append(ids, s.PeelID)
		}
	}
	return ids
}

func ids(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

var matchTests = []struct {
	kind Kind
	expr string
	want string // space-separated ids
}{
	// glob
	{"", "web*", "web1.example.com web2.example.com web10"},
	{KindGlob, "*", "web1.example.com web2.example.com web10 db1 db2 and"},
	{KindGlob, "web?", ""},
	{KindGlob, "web??", "web10"},
	{KindGlob, "db?", "db1 db2"},
	{KindGlob, "web[1-3].example.com", "web1.example.com web2.example.com"},
	{KindGlob, "web[!1].*", "web2.example.com"},
	{KindGlob, "web[^1].*", "web2.example.com"},
	{KindGlob, "*.example.*", "web1.example.com web2.example.com"},
	{KindGlob, "*com", "web1.example.com web2.example.com"},
	{KindGlob, "WEB*", ""}, // ids are case-sensitive
	{KindGlob, "db1", "db1"},
	{KindGlob, "  db1  ", "db1"},
	{KindGlob, "[]db]b1", "db1"},
	{KindGlob, "d*1", "db1"},
	{KindGlob, "*1*", "web1.example.com web10 db1"},
	// list
	{KindList, "web1.example.com,db1", "web1.example.com db1"},
	{KindList, "db1, db2 ,,", "db1 db2"},
	{KindList, "web*", ""},
	// pcre: anchored at the start only, like re.match
	{KindPCRE, `web\d+`, "web1.example.com web2.example.com web10"},
	{KindPCRE, `web\d+$`, "web10"},
	{KindPCRE, `example`, ""},
	{KindPCRE, `.*example`, "web1.example.com web2.example.com"},
	{KindPCRE, `db(1|2)`, "db1 db2"},
	// fact glob
	{KindFact, "os:Debian", "web1.example.com web10 db1"},
	{KindFact, "os:debian", "web1.example.com web10 db1"}, // case-insensitive, like Salt
	{KindFact, "os:Deb*", "web1.example.com web10 db1"},
	{KindFact, "os_family:RedHat", "db2"},
	{KindFact, "roles:web", "web1.example.com web2.example.com"},
	{KindFact, "roles:db", "db1 db2"},
	{KindFact, "roles:c*", "web1.example.com"},
	{KindFact, "num_cpus:4", "web1.example.com"},
	{KindFact, "num_cpus:[48]", "web1.example.com web2.example.com"},
	{KindFact, "virtual:false", "web1.example.com"},
	{KindFact, "kernel:release:6.1.*", "web1.example.com"},
	{KindFact, "kernel:release", "web1.example.com"}, // a map matches on its keys
	{KindFact, "kernel:*", "web1.example.com"},
	{KindFact, "network:interfaces:eth0:ipv4:10.0.0.*", "web1.example.com"},
	{KindFact, "network:interfaces:eth0:ipv4:10.1.*", ""},
	{KindFact, "hwaddr_interfaces:eth0:52:54:00:*", "web1.example.com"}, // value with ':'
	{KindFact, "disks:0:name:sda", "web1.example.com"},
	{KindFact, "disks:name:sd?", "web1.example.com"},
	{KindFact, "disks:size:512", "web1.example.com"},
	{KindFact, "osfullname:Red Hat*", "db1"},
	{KindFact, "nosuch:x", ""},
	// fact regex
	{KindFactPCRE, "os:(Debian|Ubuntu)", "web1.example.com web2.example.com web10 db1"},
	{KindFactPCRE, "os:deb", "web1.example.com web10 db1"}, // anchored at start, case-insensitive
	{KindFactPCRE, "os:(?:cent)os$", "db2"},
	{KindFactPCRE, `kernel:release:^6\.\d`, "web1.example.com"},
	// CIDR
	{KindIPCIDR, "10.0.0.0/8", "web1.example.com web2.example.com db2"},
	{KindIPCIDR, "10.1.0.0/16", "web2.example.com"},
	{KindIPCIDR, "10.1.2.3/16", "web2.example.com"}, // host bits are masked
	{KindIPCIDR, "192.168.1.10", "db1"},
	{KindIPCIDR, "172.16.0.0/12", "db2"},          // 4-in-6 address
	{KindIPCIDR, "fe80::/10", "web1.example.com"}, // zone ignored
	{KindIPCIDR, "2001:db8::/32", "web2.example.com"},
	// nodegroups
	{KindNodegroup, "webs", "web1.example.com web2.example.com web10"},
	{KindNodegroup, "debian_webs", "web1.example.com web10"},
	{KindNodegroup, "nested", "web1.example.com web10 db1 db2"},
	// compound
	{KindCompound, "G@os:Debian and web* or L@db1,db2", "web1.example.com web10 db1 db2"},
	{KindCompound, `not G@os:Debian and ( E@web\d+ or S@10.0.0.0/8 )`, "web2.example.com db2"},
	{KindCompound, `not G@os:Debian and (E@web\d+ or S@10.0.0.0/8)`, "web2.example.com db2"},
	{KindCompound, "web* and not G@os:Debian", "web2.example.com"},
	{KindCompound, "web* not G@os:Debian", "web2.example.com"}, // Salt's implicit and
	{KindCompound, "not web*", "db1 db2 and"},
	{KindCompound, "not not web*", "web1.example.com web2.example.com web10"},
	{KindCompound, "not(web*)", "db1 db2 and"},
	{KindCompound, "db1 or db2 and G@os:CentOS", "db1 db2"}, // and binds tighter
	{KindCompound, "( db1 or db2 ) and G@os:CentOS", "db2"}, // parens override
	{KindCompound, "(db1 or db2) and G@os:CentOS", "db2"},   // without spaces
	{KindCompound, "not db1 and db*", "db2"},                // not binds tighter than and
	{KindCompound, "not ( db1 and db* )", "web1.example.com web2.example.com web10 db2 and"},
	{KindCompound, "db1 or web10 or L@db2", "db1 db2 web10"},
	{KindCompound, "N@webs and G@os:Ubuntu", "web2.example.com"},
	{KindCompound, "N@nested", "web1.example.com web10 db1 db2"},
	{KindCompound, "(N@webs)", "web1.example.com web2.example.com web10"},
	{KindCompound, "(E@web(1|2)\\..*)", "web1.example.com web2.example.com"},
	{KindCompound, "(E@web(1|2))", "web1.example.com web2.example.com web10"},
	{KindCompound, "( E@db(1) )", "db1"},
	{KindCompound, "(G@os:Debian) and (L@db1)", "db1"},
	{KindCompound, "G%@kernel%release%6.1*", "web1.example.com"},
	{KindCompound, "P@os:(?:cent)os", "db2"},
	{KindCompound, `G@osfullname:Red\ Hat*`, "db1"},
	{KindCompound, "G@hwaddr_interfaces:eth0:52:54:00:12:34:56", "web1.example.com"},
	{KindCompound, "S@10.2.3.4 or S@192.168.0.0/16", "db1 db2"},
	{KindCompound, "[a]nd", "and"},
	{KindCompound, "\tweb10\n", "web10"},
	// I@ matches settings, never facts, case-insensitively as G@; a
	// subject without settings matches none.
	{KindSettings, "role:web*", "web1.example.com web10"},
	{KindCompound, "I@role:web and not G@os:Ubuntu", "web1.example.com"},
	{KindCompound, "I@pkgs:nginx", "web1.example.com"},
	{KindCompound, "I@os:Debian", ""},
	{KindCompound, "I%@db%password%*", "web1.example.com"},
	{KindCompound, "not I@role:*", "web2.example.com db1 db2 and"},
}

var testGroups = map[string]string{
	"webs":        "web*",
	"debian_webs": "N@webs and G@os:Debian",
	"dbs":         "L@db1,db2",
	"nested":      "N@debian_webs or ( N@dbs )",
	"cycle_a":     "web* or N@cycle_b",
	"cycle_b":     "db* and N@cycle_c",
	"cycle_c":     "N@cycle_a",
	"self":        "N@self",
	"broken":      "L@db1 and (",
	"uses_broken": "web* or N@broken",
}

// testOpts parses with the test nodegroups.
var testOpts = Options{Nodegroups: testGroups}

// mustParse is Parse with testOpts, failing the test on an error.
func mustParse(t *testing.T, kind Kind, expr string) Expr {
	t.Helper()
	e, err := Parse(kind, expr, testOpts)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", kind, expr, err)
	}
	return e
}

func TestMatch(t *testing.T) {
	subs := fleet()
	for _, tc := range matchTests {
		e, err := Parse(tc.kind, tc.expr, testOpts)
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", tc.kind, tc.expr, err)
			continue
		}
		got := matching(e, subs)
		want := ids(tc.want)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("Parse(%q, %q) = %s: matches %q, want %q", tc.kind, tc.expr, e, got, want)
		}
		// The rendering parses back, as compound and without nodegroups,
		// to the same matches and renders the same again.
		s := e.String()
		e2, err := Parse(KindCompound, s, Options{})
		if err != nil {
			t.Errorf("Parse(%q, %q).String() = %q does not reparse: %v", tc.kind, tc.expr, s, err)
			continue
		}
		got2 := matching(e2, subs)
		slices.Sort(got2)
		if !slices.Equal(got2, got) {
			t.Errorf("%q reparsed from %q matches %q, want %q", s, tc.expr, got2, got)
		}
		if s2 := e2.String(); s2 != s {
			t.Errorf("String not stable: %q -> %q", s, s2)
		}
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		expr string
		want string
	}{
		{"", "web*", "web*"},
		{KindList, "a, b,a", "L@a,b"},
		{KindPCRE, `web\d+`, `E@web\d+`},
		{KindPCRE, `a b`, `E@a\ b`},
		{KindPCRE, `\Qa b\E`, `E@\Qa\E\ \Qb\E`},
		{KindFact, "os:Debian", "G@os:Debian"},
		{KindFact, "osfullname:Red Hat*", `G@osfullname:Red\ Hat*`},
		{KindFactPCRE, "os:Deb.*", "P@os:Deb.*"},
		{KindIPCIDR, "10.1.2.3/8", "S@10.0.0.0/8"},
		{KindIPCIDR, "10.1.2.3", "S@10.1.2.3/32"},
		{KindNodegroup, "nested", "web* and G@os:Debian or L@db1,db2"},
		{KindGlob, "and", "[a]nd"},
		{KindGlob, "G@os:x", "[G]@os:x"},
		{KindGlob, "(x)", "[(]x[)]"},
		{KindGlob, "not(x", "[n]ot(x"},
		{KindCompound, "(a or b) and not (c and d) and not e", "( a or b ) and not ( c and d ) and not e"},
		{KindCompound, "a and (b and c)", "a and b and c"},
		{KindCompound, "a or (b or c) or not not d", "a or b or c or d"},
		{KindCompound, "(a or b))", ""},           // error, see TestErrors
		{KindCompound, "(x or L@a,b)) and c", ""}, // both ')' close groups
		{KindList, "a,b)", "E@(?:a|b\\))$"},
		{KindList, "a),b", "L@a),b"},
		{KindFact, "k:v)", "G@k:v[)]"},
		{KindFact, "k:(v))", "G@k:(v)[)]"},
		{KindCompound, "( x or G@k:(v) ) and c", "( x or G@k:(v) ) and c"},
		{KindCompound, "G%@a%b:c", "G%@a%b:c"},
		// what the lexer would misread is disguised
		{KindCompound, `(a\) and b`, `a[\] and b`},
		{KindPCRE, `\Qa b`, `E@\Qa\E\ \Qb\E`},
		{KindPCRE, `a\\ b`, `E@a\\\ b`},
		{KindPCRE, `\Qa\`, `E@\Qa\\E`},
		{KindFactPCRE, `k:\Qa\`, `P@k:\Qa\\E`},
		{KindFactPCRE, "k:a b:c d", `P@k:a\ b:c\ d`},
		{KindFact, `k:a\ b`, `G@k:a\ b`},
		{KindFact, `k:v\`, `G@k:v[\]`},
		{KindGlob, "a b)", `a\ b[)]`},
		{KindGlob, " (x", "[(]x"},
		{KindGlob, "or(", "[o]r("},
		{KindGlob, ")", "[)]"},
		{KindList, "a),b)", `E@(?:a\)|b\))$`},
		{KindList, `a\,b`, `L@a\,b`},
		{KindList, `a,b\`, `E@(?:a|b\\)$`},
	} {
		e, err := Parse(tc.kind, tc.expr, testOpts)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Parse(%q, %q) = %s, want error", tc.kind, tc.expr, e)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", tc.kind, tc.expr, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("Parse(%q, %q).String() = %q, want %q", tc.kind, tc.expr, got, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		expr string
		col  int
		msg  string
	}{
		{KindCompound, "", 1, "empty expression"},
		{KindCompound, "   ", 1, "empty expression"},
		{KindGlob, "", 1, "empty expression"},
		{KindFact, " ", 1, "empty expression"},
		// unbalanced parentheses
		{KindCompound, "( web*", 1, `unbalanced "("`},
		{KindCompound, "web* and ( db* or ( x )", 10, `unbalanced "("`},
		{KindCompound, "web* )", 6, `unbalanced ")"`},
		{KindCompound, "(web*))", 7, `unbalanced ")"`},
		{KindCompound, "((db1 or db2))and G@os:CentOS", 19, `expected "and", "or" or ")" before "G@os:CentOS"`},
		{KindCompound, "( )", 3, `expected a target after "(", found ")"`},
		// unknown letters
		{KindCompound, "X@foo", 1, `unknown target type "X@"`},
		{KindCompound, "web* and X@foo", 10, `unknown target type "X@"`},
		{KindCompound, "g@os:Debian", 1, "upper-case"},
		{KindCompound, "I@role", 7, `expected ':' between fact key and value pattern`},
		{KindCompound, "a or I@", 8, `expected key:value after "I@"`},
		{KindSettings, "role:", 5, "empty value pattern"},
		{KindCompound, "J%@role%web", 1, "pillar regex targeting (J@) is not supported"},
		{KindCompound, "R@%foo", 1, "range targeting"},
		// dangling and misplaced operators
		{KindCompound, "web* and", 9, `expected a target after "and", found end of expression`},
		{KindCompound, "web* or", 8, `expected a target after "or", found end of expression`},
		{KindCompound, "not", 4, `expected a target after "not", found end of expression`},
		{KindCompound, "and web*", 1, `expected a target, found "and"`},
		{KindCompound, "web* and or db*", 10, `expected a target after "and", found "or"`},
		{KindCompound, "( and web* )", 3, `expected a target after "(", found "and"`},
		{KindCompound, "web* db*", 6, `expected "and" or "or" before "db*"`},
		// bad regex
		{KindPCRE, "web(", 1, "bad regular expression: missing closing )"},
		{KindCompound, "web* and E@web(", 12, "missing closing )"},
		{KindCompound, "E@ab[", 5, "missing closing ]"},
		{KindCompound, "E@a**", 4, "invalid nested repetition operator"},
		{KindCompound, "P@os:Deb(", 6, "missing closing )"},
		{KindPCRE, `a)(b`, 1, "unexpected )"},
		{KindCompound, "E@", 3, "empty regular expression"},
		// bad CIDR
		{KindIPCIDR, "10.0.0.0/33", 1, "bad CIDR"},
		{KindCompound, "web* or S@10.0.0.0/33", 11, `bad CIDR "10.0.0.0/33"`},
		{KindCompound, "S@10.0.0.300", 3, "bad IP address"},
		{KindCompound, "S@fe80::1%eth0", 3, "zones are not allowed"},
		{KindCompound, "S@", 3, "expected an address or CIDR"},
		// bad glob
		{KindGlob, "web[", 4, `unclosed "[" in pattern`},
		{KindCompound, "db* or web[", 11, `unclosed "[" in pattern`},
		{KindCompound, "web[!", 4, `unclosed "["`},
		{KindCompound, "web[]", 4, `unclosed "["`},
		{KindCompound, "web[a[]", 6, `"[" inside a [...] class`},
		{KindCompound, "G@os:Deb[", 9, `unclosed "["`},
		// facts
		{KindCompound, "G@os:", 5, "empty value pattern"},
		{KindFact, "os:", 3, "empty value pattern"},
		{KindCompound, "G@os", 5, `expected ':' between fact key and value`},
		{KindCompound, "G@:Debian", 3, "empty fact key"},
		{KindCompound, "G@", 3, "expected key:value"},
		{KindFact, "os family:Debian", 3, "whitespace or backslash in fact key"},
		// lists
		{KindCompound, "L@", 3, "empty list"},
		{KindCompound, "L@,,", 3, "empty list"},
		{KindList, "a,b c", 4, "whitespace in peel id"},
		// nodegroups
		{KindNodegroup, "nosuch", 1, `unknown nodegroup "nosuch"`},
		{KindCompound, "web* or N@nosuch", 11, `unknown nodegroup "nosuch"`},
		{KindNodegroup, "cycle_a", 1, "nodegroup cycle: cycle_a -> cycle_b -> cycle_c -> cycle_a"},
		{KindCompound, "db1 or N@cycle_b", 10, "nodegroup cycle: cycle_b -> cycle_c -> cycle_a -> cycle_b"},
		{KindCompound, "N@self", 3, "nodegroup cycle: self -> self"},
		{KindCompound, "db1 or N@broken", 10, `in nodegroup "broken": target "L@db1 and (" column 12: expected a target after "("`},
		{KindNodegroup, "uses_broken", 1, `in nodegroup "uses_broken": target "web* or N@broken" column 11: in nodegroup "broken"`},
		{KindCompound, strings.Repeat("(", 1001) + "a" + strings.Repeat(")", 1001), 1001, "nested too deeply"},
		// text
		{KindCompound, "web*\u00a0or db*", 5, "non-ASCII whitespace U+00A0"},
		{KindCompound, "web\xff", 4, "invalid UTF-8"},
		{KindCompound, "wéb* and ( x", 10, `unbalanced "("`}, // columns count characters
	} {
		_, err := Parse(tc.kind, tc.expr, testOpts)
		var te *Error
		if !errors.As(err, &te) {
			t.Errorf("Parse(%q, %q) error = %v, want *Error", tc.kind, tc.expr, err)
			continue
		}
		if te.Column != tc.col || !strings.Contains(te.Msg, tc.msg) || te.Expr != tc.expr {
			t.Errorf("Parse(%q, %q) error = %v, want column %d and %q", tc.kind, tc.expr, err, tc.col, tc.msg)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse(KindCompound, "G@os:", Options{})
	if got, want := err.Error(), `target "G@os:" column 5: empty value pattern`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := Parse("bogus", "x", Options{}); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestKindFromFlag(t *testing.T) {
	for flag, want := range map[string]Kind{
		"": KindGlob, "L": KindList, "E": KindPCRE, "G": KindFact, "P": KindFactPCRE,
		"S": KindIPCIDR, "N": KindNodegroup, "C": KindCompound, "-C": KindCompound, "I": KindSettings,
	} {
		if got, err := KindFromFlag(flag); err != nil || got != want {
			t.Errorf("KindFromFlag(%q) = %q, %v; want %q", flag, got, err, want)
		}
	}
	for _, flag := range []string{"X", "J", "R", "l", "LL"} {
		if k, err := KindFromFlag(flag); err == nil {
			t.Errorf("KindFromFlag(%q) = %q, want error", flag, k)
		}
	}
}

// IDOnly says whether an expression looks at nothing but peel ids; IDs
// lists the ids it matches when they are a fixed set.
func TestIDOnlyAndIDs(t *testing.T) {
	for _, tc := range []struct {
		kind   Kind
		expr   string
		idOnly bool
		ids    []string // nil: not a fixed set
	}{
		{"", "web*", true, nil},
		{"", "db*", true, nil},
		{"", "db[1]", true, nil},
		{"", "db1", true, []string{"db1"}},
		{KindList, "a,b", true, []string{"a", "b"}},
		{KindList, "web1,web2,db1", true, []string{"web1", "web2", "db1"}},
		{KindList, "b,a,b", true, []string{"b", "a"}},
		{KindPCRE, "a", true, nil},
		{KindFact, "os:x", false, nil},
		{KindFactPCRE, "os:x", false, nil},
		{KindIPCIDR, "10.0.0.0/8", false, nil},
		{KindNodegroup, "webs", true, nil},
		{KindNodegroup, "debian_webs", false, nil},
		{KindNodegroup, "dbs", true, []string{"db1", "db2"}},
		{KindCompound, "web* and not ( L@a or E@b )", true, nil},
		{KindCompound, "web* and not ( L@a or S@10.0.0.1 )", false, nil},
		{KindCompound, "L@a,b or c or L@b,d", true, []string{"a", "b", "c", "d"}},
		{KindCompound, "L@a,b or c*", true, nil},
		{KindCompound, "L@a,b and c", true, nil},
		{KindCompound, "not L@a", true, nil},
		{KindCompound, "N@dbs or web1", true, []string{"db1", "db2", "web1"}},
	} {
		e := mustParse(t, tc.kind, tc.expr)
		if got := e.IDOnly(); got != tc.idOnly {
			t.Errorf("Parse(%q, %q).IDOnly() = %v, want %v", tc.kind, tc.expr, got, tc.idOnly)
		}
		got, ok := IDs(e)
		if ok != (tc.ids != nil) || !reflect.DeepEqual(got, tc.ids) && tc.ids != nil {
			t.Errorf("IDs(%q) = %q, %v; want %q", tc.expr, got, ok, tc.ids)
		}
	}
}

func TestInspect(t *testing.T) {
	e, err := Parse(KindCompound, "G@network:interfaces:eth0:ipv4:10.* and not ( web* or S@10.0.0.0/8 )", Options{})
	if err != nil {
		t.Fatal(err)
	}
	and, ok := e.(*AndExpr)
	if !ok || len(and.Terms()) != 2 {
		t.Fatalf("got %T %v", e, e)
	}
	f := and.Terms()[0].(*FactExpr)
	if !slices.Equal(f.Path(), []string{"network", "interfaces", "eth0", "ipv4"}) || f.Pattern() != "10.*" || f.IsRegex() {
		t.Errorf("fact: %q %q %v", f.Path(), f.Pattern(), f.IsRegex())
	}
	or := and.Terms()[1].(*NotExpr).Operand().(*OrExpr)
	if g := or.Terms()[0].(*GlobExpr); g.Pattern() != "web*" {
		t.Errorf("glob %q", g.Pattern())
	}
	if c := or.Terms()[1].(*CIDRExpr); c.Prefix() != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("cidr %v", c.Prefix())
	}
}

func TestMapSubject(t *testing.T) {
	s := MapSubject{PeelID: "p", Facts: map[string]any{
		"a":       map[string]any{"b": []any{"x", map[string]any{"c": "deep"}}},
		"network": map[string]any{"addresses": []string{"10.0.0.1", "nope", "::1"}},
	}}
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"a", "b", "0"}, "x"},
		{[]string{"a", "b", "-1", "c"}, "deep"},
		{[]string{"a", "b", "c"}, "deep"},
		{[]string{"a", "b", "5"}, nil},
		{[]string{"a", "x"}, nil},
		{[]string{"a", "b", "0", "z"}, nil},
		{nil, nil},
	} {
		got, ok := s.Fact(tc.path)
		if ok != (tc.want != nil) || ok && got != tc.want {
			t.Errorf("Fact(%q) = %v, %v; want %v", tc.path, got, ok, tc.want)
		}
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::1")}
	if got := s.Addrs(); !slices.Equal(got, want) {
		t.Errorf("Addrs() = %v, want %v", got, want)
	}
	s.Addresses = []netip.Addr{}
	if got := s.Addrs(); len(got) != 0 {
		t.Errorf("explicit empty Addresses: got %v", got)
	}
	var empty MapSubject
	if _, ok := empty.Fact([]string{"x"}); ok || empty.Addrs() != nil {
		t.Error("empty subject has facts")
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		fold   bool
		want   bool
	}{
		{"*", "", false, true},
		{"a*b*c", "aXbYbZc", false, true},
		{"a*b*c", "aXbYbZ", false, false},
		{"a?c", "abc", false, true},
		{"a?c", "aé c", false, false},
		{"a?c", "aéc", false, true},
		{"[a-c]x", "bx", false, true},
		{"[c-a]x", "bx", false, false}, // reversed range: empty
		{"[-a]", "-", false, true},
		{"[a-]", "-", false, true},
		{"[]]", "]", false, true},
		{"[[]", "[", false, true},
		{"[!]]", "a", false, true},
		{"a/b*", "a/b/c.d", false, true},
		{`a\ b`, "a b", false, true},
		{`a\b`, `a\b`, false, true},
		{"DEB*", "debian", true, true},
		{"[A-C]x", "bX", true, true},
		{"[!A-C]x", "bx", true, false},
		{"k", "\u212a", true, true}, // Kelvin sign folds to k
		{"straße", "STRASSE", true, false},
	} {
		g, err := compileGlob(tc.pat, tc.fold)
		if err != nil {
			t.Errorf("compileGlob(%q): %v", tc.pat, err.msg)
			continue
		}
		if got := g.match(tc.s); got != tc.want {
			t.Errorf("glob %q (fold %v) match %q = %v, want %v", tc.pat, tc.fold, tc.s, got, tc.want)
		}
	}
}

func TestConcurrentMatch(t *testing.T) {
	e, err := Parse(KindCompound, `G@os:Debian and ( web* or E@db\d+ ) and not S@10.1.0.0/16`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	subs := fleet()
	want := matching(e, subs)
	done := make(chan []string)
	for range 8 {
		go func() { done <- matching(e, subs) }()
	}
	for range 8 {
		if got := <-done; !slices.Equal(got, want) {
			t.Errorf("concurrent match %q, want %q", got, want)
		}
	}
}
