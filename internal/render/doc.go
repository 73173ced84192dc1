// Package render is the template engine shared by settings (.zy) and states
// (.sls): Go text/template with a hermetic function set, strict missing keys,
// secrets that never appear in rendered text, and hard bounds on output,
// work and time so that one bad template cannot hang or exhaust a master
// rendering for a million peels.
//
// # Parse once, execute per peel
//
// Parse compiles a file once; Template.Execute runs it for one peel with that
// peel's data (.id, .facts) and callbacks (Funcs). A Template is safe for
// concurrent Execute: each execution takes a private executor (a clone of the
// parsed template whose functions are bound to that execution's state) from a
// pool, so the per-peel cost is the execution itself.
//
// # Functions
//
// Sprig's HermeticTxtFuncMap, minus what is not repeatable or not bounded:
// random values and keys (randInt, shuffle, bcrypt, htpasswd, encryptAES,
// genPrivateKey, genCA*, genSelfSigned*, genSigned*, buildCustomCert), the
// clock and the local time zone (ago, toDate, mustToDate, unixEpoch), and
// derivePassword (scrypt: 32 MiB and ~100 ms a call; secrets belong in
// secret). A settings render must give the same result on the master and on
// the peel, today and tomorrow, so nothing may depend on when or where it
// runs. Functions that can multiply their input (repeat, until, untilStep,
// seq, indent, nindent, replace, regexReplaceAll*, wrapWith, printf,
// toPrettyJson) check the size of their result before building it; uniq is
// replaced by a linear version.
//
// Ours:
//
//	secret "zs1:…"        the plaintext of a sealed token, opened by Funcs.Secret
//	setting "a:b:c" [DEF]  a value of the already-merged settings (Funcs.Setting)
//	basket TARGET NAME     basket entries NAME of the peels TARGET matches (Funcs.Basket)
//	default DEF VALUE      sprig's default, and VALUE may be a missing key
//	index X K…             the builtin index, but a missing map key is an error
//
// The argument order of basket is Salt's mine.get(tgt, fun):
// {{ basket "G@role:web" "ipv4" }}.
//
// # Strict keys and default
//
// Templates run with missingkey=error: .facts.nope is an error naming the
// file, line and column, never an empty string that turns into a wrong
// setting. The one way round it is default, which keeps sprig's meaning
// (the value when it is not empty, else DEF) and also accepts a missing key:
// {{ .facts.role | default "web" }} and {{ default "web" .facts.role }} both
// give "web" when the peel has no role fact. This is done by rewriting the
// parsed template: the argument default tests, when it is a field chain
// (.a.b, $x.a, $.a) or a call of index or setting, is looked up leniently.
// Anything else (a function's own error) is still an error. hasKey and dig
// test for a key without a default.
//
// # Secrets
//
// secret returns an opaque value. Printed into the output it becomes a
// placeholder unique to this execution (a random nonce and an index), never
// the plaintext; functions that read text (upper, b64enc, …) refuse it, and
// so do comparisons, so a template can place a secret but not inspect or
// transform it. Output.Resolve turns a scalar of the decoded output back
// into a Secret (masked when printed, logged or marshalled; Secret.Reveal
// gives the plaintext), so a rendered document carries its secrets marked
// and a YAML error, an event or a log line quotes placeholders only. A
// setting that is a Secret comes back into a template the same way.
//
// # Bounds
//
// text/template has no timeout, so every execution is bounded by Limits:
//
//   - MaxOutput (default 1 MiB): rendered bytes; also the largest value a
//     function may return (strings by length; lists and maps by their
//     expanded size, nodes plus string bytes, so a list that holds itself
//     twice 30 times over is refused long before it is printed).
//   - MaxSteps (default 1,000,000): loop iterations plus function calls plus
//     value nodes examined. Every range body is rewritten to start with a
//     step, so {{ range 1000000000000 }}{{ end }} stops at the cap.
//   - Timeout (default 2 s): wall clock, checked at every step and write.
//
// A {{ template }} call cycle is refused at parse time (the recursion would
// otherwise run to text/template's depth limit, 100,000 frames). Values are
// at most 100 levels deep. Exceeding a bound is an *Error wrapping a
// *LimitError (errors.Is(err, ErrLimit)), naming the file and, where known,
// the line and column.
//
// # Errors
//
// Parse and execution errors are *Error: file, line, column (0 when
// text/template does not give one: its parse errors carry a line only, and
// the column is found when the message names a token on that line) and a
// message without text/template's prefixes.
package render
