// Package funcs is the registry of job functions that zester-peel (the agent
// on each managed host) can execute, together with the built-in
// implementations.
//
// A job names a function ("cmd.run", "file.stat", ...) and carries its
// arguments as JSON. Arguments are normally a JSON object whose fields are
// decoded strictly into a per-function struct (unknown fields and wrong JSON
// types are rejected with an *Error of code CodeBadArgs naming the argument).
// For convenience a JSON array of positional values is accepted as well; the
// positions map to the main fields of each function, e.g.
//
//	cmd.run   ["ls -la"]         == {"cmd": "ls -la"}
//	test.echo ["hello"]          == {"text": "hello"}
//	file.read ["/etc/hostname"]  == {"path": "/etc/hostname"}
//
// Registry.Run never panics: a panicking function is reported as an *Error
// with code CodeFailed. All errors returned by Run are *Error values so the
// caller can put Code into the job return.
//
// Built-in functions:
//
//	test.ping                                  -> true
//	test.echo     {text}                       -> the text
//	test.sleep    {seconds}                    -> true after sleeping (honours ctx)
//	cmd.run       {cmd|argv, cwd, env, timeout, stdin}           -> *CmdResult
//	cmd.script    {script, interpreter, args, cwd, env, timeout, stdin} -> *CmdResult
//	sys.info                                   -> *SysInfo
//	service.status {name}                      -> *ServiceStatus
//	file.stat     {path}                       -> *FileStat
//	file.read     {path, max_bytes}            -> *FileContent
//	facts.get     {path}                       -> facts, optionally narrowed ("os:id")
//	facts.refresh                              -> freshly collected facts
//	settings.get  {key, default, reveal}       -> one setting ("db:password"), secrets masked
//	settings.items {reveal}                    -> every setting, secrets masked
//	network.ipv4  {interface, loopback}        -> the host's IPv4 addresses
//	network.ipv6  {interface, loopback}        -> the host's IPv6 addresses
//	network.interfaces                         -> []Interface
//	basket.get    {target, name, kind}         -> entry name of the peels target selects, by id
package funcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
)

// DefaultMaxOutput is the output cap used when Env.MaxOutput is zero.
const DefaultMaxOutput = 1 << 20

// Error codes carried by *Error.
const (
	CodeUnknownFunction = "unknown_function"
	CodeBadArgs         = "bad_args"
	CodeFailed          = "failed"
	CodeTimeout         = "timeout"
	CodeTooLarge        = "too_large"
)

// Func runs one job function. args is the JSON of the job's arguments and may
// be nil, empty or the JSON literal null.
type Func func(ctx context.Context, env *Env, args json.RawMessage) (any, error)

// Env is the execution environment the agent provides to functions.
type Env struct {
	// PeelID is the id of the agent running the function.
	PeelID string
	// Facts returns the current facts of the host; refresh=true recollects
	// (and republishes) them. May be nil when facts are not available.
	Facts func(ctx context.Context, refresh bool) (any, error)
	// MaxOutput caps captured stdout/stderr (per stream) and file.read in
	// bytes. DefaultMaxOutput is used when it is zero or negative.
	MaxOutput int
	// Settings returns the peel's settings (its last good render), secrets
	// masked unless reveal; nil when the agent has none.
	Settings func(ctx context.Context, reveal bool) (map[string]any, error)
	// MayReveal says the job may see secrets in plaintext: it came, signed,
	// from a requester whose role may reveal (settings.go).
	MayReveal bool
	// Basket reads basket entry name of the peels a target of kind ("" a
	// glob) selects, by peel id (basket.get). May be nil.
	Basket func(ctx context.Context, kind, target, name string) (map[string]any, error)
	// StateTree brings the masters' state tree to the host and returns
	// its directory (read-only) and version. May be nil (no connection).
	StateTree func(ctx context.Context) (dir, version string, err error)
}

func (e *Env) maxOutput() int {
	if e == nil || e.MaxOutput <= 0 {
		return DefaultMaxOutput
	}
	return e.MaxOutput
}

// Error is the typed error returned by Registry.Run.
type Error struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code
	}
	return e.Code + ": " + e.Msg
}

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

func badArgs(format string, a ...any) *Error { return errorf(CodeBadArgs, format, a...) }

// Registry maps function names to implementations. It is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]Func
}

// NewRegistry returns a registry with all built-in functions registered.
func NewRegistry() *Registry {
	r := &Registry{funcs: make(map[string]Func)}
	r.Register("test.ping", testPing)
	r.Register("test.echo", testEcho)
	r.Register("test.sleep", testSleep)
	r.Register("cmd.run", cmdRun)
	r.Register("cmd.script", cmdScript)
	r.Register("sys.info", sysInfo)
	r.Register("service.status", serviceStatus)
	r.Register("file.stat", fileStat)
	r.Register("file.read", fileRead)
	r.Register("facts.get", factsGet)
	r.Register("facts.refresh", factsRefresh)
	r.Register("settings.get", settingsGet)
	r.Register("settings.items", settingsItems)
	r.Register("network.ipv4", networkIPv4)
	r.Register("network.ipv6", networkIPv6)
	r.Register("network.interfaces", networkInterfaces)
	r.Register("basket.get", basketGet)
	return r
}

// Register adds or replaces the function called name. It panics if name is
// empty or f is nil (programming errors).
func (r *Registry) Register(name string, f Func) {
	if name == "" {
		panic("funcs: Register with empty name")
	}
	if f == nil {
		panic("funcs: Register " + name + " with nil func")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.funcs == nil {
		r.funcs = make(map[string]Func)
	}
	r.funcs[name] = f
}

// Names returns the registered function names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := slices.Sorted(maps.Keys(r.funcs))
	return names
}

// Run executes the function called name. It never panics; every error it
// returns is an *Error. A nil env is treated as an empty Env.
func (r *Registry) Run(ctx context.Context, env *Env, name string, args json.RawMessage) (res any, err error) {
	r.mu.RLock()
	f, ok := r.funcs[name]
	r.mu.RUnlock()
	if !ok {
		return nil, r.unknown(name)
	}
	if env == nil {
		env = &Env{}
	}
	defer func() {
		if p := recover(); p != nil {
			res = nil
			err = &Error{Code: CodeFailed, Msg: fmt.Sprintf("panic: %v\n%s", p, debug.Stack())}
		}
	}()
	res, err = f(ctx, env, args)
	if err != nil {
		return nil, toError(err)
	}
	return res, nil
}

// toError converts any error into an *Error.
func toError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeTimeout, Msg: err.Error()}
	case errors.Is(err, context.Canceled):
		return &Error{Code: CodeFailed, Msg: "cancelled: " + err.Error()}
	}
	return &Error{Code: CodeFailed, Msg: err.Error()}
}

func (r *Registry) unknown(name string) *Error {
	names := r.Names()
	var close []string
	for _, n := range names {
		if isClose(name, n) {
			close = append(close, n)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "unknown function %q", name)
	if len(close) > 0 {
		fmt.Fprintf(&b, "; did you mean %s?", strings.Join(close, ", "))
	}
	fmt.Fprintf(&b, "; known functions: %s", strings.Join(names, ", "))
	return &Error{Code: CodeUnknownFunction, Msg: b.String()}
}

// isClose reports whether candidate is a plausible intended spelling of name.
func isClose(name, candidate string) bool {
	if name == "" {
		return false
	}
	ln, lc := strings.ToLower(name), strings.ToLower(candidate)
	if ln == lc || strings.Contains(lc, ln) || strings.Contains(ln, lc) {
		return true
	}
	// Same function in another module or same module, small typo.
	limit := 2
	if len(ln) > 12 {
		limit = 3
	}
	if levenshtein(ln, lc) <= limit {
		return true
	}
	// Matching last component ("ping" vs "test.ping").
	if i := strings.LastIndexByte(lc, '.'); i >= 0 && lc[i+1:] == ln {
		return true
	}
	return false
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
