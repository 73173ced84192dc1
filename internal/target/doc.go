// Package target parses and evaluates Salt-compatible target expressions:
// which peels a command is sent to.
//
// An expression is parsed once, by Parse, into a tree of Expr nodes; the
// tree is then matched against any number of peels (Subject). Every check
// that can fail happens at parse time — patterns, regular expressions,
// CIDRs, nodegroup names and cycles — and errors are *Error values naming
// the 1-based column at fault:
//
//	target "G@os:" column 5: empty value pattern
//
// # Target kinds
//
// The kind is chosen the way salt's command-line flags choose it (see
// KindFromFlag):
//
//	glob (default)  web*  web[1-3].example.com  db?
//	-L list         web1,web2,db1
//	-E pcre         web\d+          RE2; anchored at the start only, like re.match
//	-G fact         os:Debian       network:interfaces:eth0:ipv4:10.0.0.*
//	-P factpcre     os:(Debian|Ubuntu)
//	-S ipcidr       10.0.0.0/8      or a single address
//	-N nodegroup    webservers      a name from Options.Nodegroups
//	-C compound     G@os:Debian and web* or L@db1,db2
//
// Globs are fnmatch-style, as in Salt: '*' matches any run of characters
// including dots and slashes, '?' one character, "[a-z]" a class, "[!a-z]"
// or "[^a-z]" its complement; a ']' or '[' first in a class is a member.
// A '[' that is never closed, or a '[' later in a class, is an error. A
// backslash before whitespace escapes it; any other backslash is literal.
// Globs on peel ids are case-sensitive.
//
// Fact targets are "key:key:...:value". The last part is the value
// pattern and everything before it the key path through nested maps.
// When that reading fails, shorter key paths (of at most 10 keys) are
// tried with the rest as the value, as Salt does, so
// "hwaddr_interfaces:eth0:52:54:00:*" works. The value matches when the fact is a scalar whose
// string form matches (numbers as Python prints whole numbers, booleans as
// True/False, null as None), a list with a matching element, or a map
// with a matching key. Fact matching is case-insensitive (Unicode simple
// folding), for globs and regular expressions alike, as in Salt. A list
// in the key path can be indexed by number. Key parts may not be empty or
// contain whitespace or backslashes. A custom delimiter is written
// between the letter and the '@' in compound expressions: "G%@os%Debian".
//
// A nodegroup is a compound expression, and may use other nodegroups with
// N@; it is expanded when the expression is parsed, and a cycle is an
// error.
//
// For the non-compound kinds, surrounding whitespace is ignored; list
// elements are trimmed one by one, and empty ones skipped.
//
// # Compound grammar
//
//	expr     = or
//	or       = and { "or" and }
//	and      = not { "and" not | &"not" not }  // before "not", "and" may be left out:
//	                                            // "a not b" is "a and not b", as in Salt
//	not      = "not" not | primary
//	primary  = "(" or ")" | target
//	target   = glob                 bare word
//	         | "G" [d] "@" fact     d: optional key delimiter, default ':'
//	         | "P" [d] "@" factpcre
//	         | "L@" list
//	         | "E@" pcre
//	         | "S@" cidr
//	         | "I" [d] "@" setting  key:glob on the peel's settings (Salt's pillar)
//	         | "N@" nodegroup
//
// Precedence is Python's, which Salt evaluates compound expressions with:
// not binds tighter than and, which binds tighter than or. Words are
// separated by whitespace; a target therefore cannot contain a space,
// except escaped with a backslash ("G@osfullname:Red\ Hat*"). Salt wants
// spaces around parentheses; they may also stick to a word, as in
// "(web* or db*)" or "not(G@os:Debian)". A regular expression keeps the
// parentheses that belong to it: "(E@web(1|2))" is the regex "web(1|2)"
// in a group. A parenthesis fused between a word and a keyword, as in
// "(a)and(b)", is not split. Parentheses and "not" nest at most 1000
// deep. I@ matches the peel's settings (Salt's pillar) as G@ matches facts,
// through a SettingsSubject. The letters J@ (pillar regex) and R@ (range) are reported
// as unsupported; any other single letter followed by '@' is an error,
// rather than the glob Salt would take it for.
//
// # Rendering
//
// Expr.String renders any expression, whatever its kind, in compound
// syntax with nodegroups expanded, so the text can be sent to peels that
// do not know the master's nodegroups; it parses back (as KindCompound,
// without options) to an expression matching the same peels.
//
// IDs tells when an expression is a fixed set of ids (a list, a glob
// without wildcards, or an "or" of those), so a master can address those
// peels without scanning, and Expr.IDOnly when it needs only ids.
package target
