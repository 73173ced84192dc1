package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/zester-io/zester/internal/render"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/statetree"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/peel/funcs"
	"github.com/zester-io/zester/peel/state/mod"
)

// CodeCompile is the error code of a job whose state tree does not
// compile (bad YAML, a cycle, a missing requisite): nothing ran.
const CodeCompile = "state_compile"

// CodeBusy is the error code of a state run refused because another is
// running.
const CodeBusy = "state_busy"

// CodeTreeGone is the error code of a job pinned to a state-tree version
// the bucket no longer holds: nothing ran.
const CodeTreeGone = "state_tree_gone"

// running is held by the state run in progress (one per process).
var running sync.Mutex

// CodeFailed is the error code of a run in which a state failed; the
// return still carries every state's result.
const CodeFailed = "states_failed"

// JobConfig is what the state job functions need from the peel.
type JobConfig struct {
	// StatesDir is the state tree (peel.yaml states_dir).
	StatesDir string
	// Source is where the tree comes from: SourceAuto ("" too),
	// SourceLocal or SourceMaster (peel.yaml states_source).
	Source string
	// Root prefixes host paths (zester-peel call --root; tests).
	Root string
	// Funcs back setting, basket and secret in templates; optional.
	Funcs render.Funcs
	// Settings, when set and Funcs.Setting is not, backs {{ setting }}:
	// the peel's rendered settings, secrets as render.Secret values (so
	// a secret setting reaches a file as plaintext and every result
	// masks it). Called once a run, at the first lookup.
	Settings func() (*settings.Result, error)
	Limits   render.Limits
	// Table is the state functions; nil is DefaultTable().
	Table *mod.Table
	Log   *slog.Logger
	// LockFile, when set, is flocked for the length of a state run, so
	// that the daemon and zester-peel call never run states at once.
	LockFile string
}

// Register adds state.apply, state.highstate, state.show_sls and
// state.show_top to reg.
//
//	state.apply    [SLS[,SLS]...] [test=true]  -> Return (no SLS: the highstate)
//	state.sls      SLS[,SLS]... [test=true]    -> Return (Salt's older name)
//	state.highstate [test=true]                -> Return
//	state.show_sls SLS[,SLS]...                -> {id: {module: [function, {arg: v}...], __sls__, __env__}}
//	state.show_top                             -> {"base": [SLS...]}
//
// Arguments follow Salt's convention: a JSON array of words, positional
// ones and key=value pairs mixed (["web", "test=true"]), or an object
// ({"mods": ["web"], "test": true}).
func Register(reg *funcs.Registry, cfg JobConfig) {
	reg.Register("state.apply", cfg.job("state.apply", modsOptional, true))
	reg.Register("state.sls", cfg.job("state.sls", modsRequired, true))
	reg.Register("state.highstate", cfg.job("state.highstate", modsRefused, true))
	reg.Register("state.show_sls", cfg.job("state.show_sls", modsRequired, false))
	reg.Register("state.show_top", cfg.showTop)
}

// jobArgs are the parsed arguments of a state job.
type jobArgs struct {
	mods []string
	test bool
}

// parseJobArgs reads Salt's mix of positional words and key=value pairs.
func parseJobArgs(raw json.RawMessage, takesMods bool) (jobArgs, error) {
	var a jobArgs
	raw = bytes.TrimSpace(raw)
	kw := map[string]any{}
	var pos []string
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '[':
		var items []any
		if err := json.Unmarshal(raw, &items); err != nil {
			return a, badArgs("arguments: %v", err)
		}
		for _, it := range items {
			switch x := it.(type) {
			case string:
				if k, v, ok := strings.Cut(x, "="); ok && k != "" && !strings.ContainsAny(k, " ,") {
					kw[k] = v
				} else {
					pos = append(pos, x)
				}
			case map[string]any:
				for k, v := range x {
					kw[k] = v
				}
			default:
				return a, badArgs("argument %v: want a word or key=value", it)
			}
		}
	case raw[0] == '{':
		if err := json.Unmarshal(raw, &kw); err != nil {
			return a, badArgs("arguments: %v", err)
		}
		// The CLI's form of Salt's words: {"_args": ["web"], "test": true}.
		if words, ok := kw[wire.ArgsKey]; ok {
			delete(kw, wire.ArgsKey)
			l, isList := words.([]any)
			if !isList {
				return a, badArgs("%s: want a list of words", wire.ArgsKey)
			}
			for _, w := range l {
				s, isStr := w.(string)
				if !isStr {
					return a, badArgs("argument %v: want an sls name", w)
				}
				pos = append(pos, s)
			}
		}
	default:
		return a, badArgs("arguments must be a JSON array or object")
	}
	for k, v := range kw {
		switch k {
		case "test":
			b, ok, err := mod.Args{k: v}.Bool(k)
			if err != nil || !ok {
				return a, badArgs("test: want true or false, got %v", v)
			}
			a.test = b
		case "mods":
			s, _, err := mod.Args{k: v}.Strings(k)
			if err != nil {
				return a, badArgs("%v", err)
			}
			pos = append(pos, s...)
		case "saltenv":
			if v != Environment {
				return a, badArgs("saltenv: Zester has one environment, %s", Environment)
			}
		default:
			return a, badArgs("unknown argument %s (accepted: mods, test)", k)
		}
	}
	for _, p := range pos {
		for _, m := range strings.Split(p, ",") {
			if m = strings.TrimSpace(m); m != "" {
				a.mods = append(a.mods, m)
			}
		}
	}
	if len(a.mods) > 0 && !takesMods {
		return a, badArgs("takes no sls names (got %s); state.apply takes them", strings.Join(a.mods, ", "))
	}
	return a, nil
}

func badArgs(format string, args ...any) error {
	return &funcs.Error{Code: funcs.CodeBadArgs, Msg: fmt.Sprintf(format, args...)}
}

// Tree sources (peel.yaml states_source).
const (
	SourceAuto   = "auto"   // states_dir when it exists, else the masters'
	SourceLocal  = "local"  // states_dir only
	SourceMaster = "master" // the masters' tree (state-tree bucket) only
)

// tree opens the state tree: states_dir, or the masters' tree fetched
// through env.StateTree, as Source says.
func (cfg JobConfig) tree(ctx context.Context, env *funcs.Env) (fs.FS, error) {
	dir := cfg.StatesDir
	if dir == "" {
		dir = DefaultStatesDir
	}
	st, err := os.Stat(dir)
	local := err == nil && st.IsDir()
	if cfg.Source == SourceMaster || (cfg.Source != SourceLocal && !local) {
		if env == nil || env.StateTree == nil {
			if cfg.Source == SourceMaster {
				return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: "states_source is master, but this run has no connection to the masters"}
			}
			return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: fmt.Sprintf("no state tree at %s (peel.yaml states_dir, or zester-peel call --local DIR), and no connection to the masters' tree", dir)}
		}
		tdir, version, err := env.StateTree(ctx)
		if errors.Is(err, statetree.ErrVersionGone) {
			return nil, &funcs.Error{Code: CodeTreeGone, Msg: "the masters' state tree: " + err.Error()}
		}
		if err != nil {
			return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: "the masters' state tree: " + err.Error()}
		}
		if cfg.Log != nil {
			cfg.Log.Info("state tree from the masters", "version", version)
		}
		return os.DirFS(tdir), nil
	}
	if !local {
		return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: fmt.Sprintf("no state tree at %s (peel.yaml states_dir, or zester-peel call --local DIR)", dir)}
	}
	return os.DirFS(dir), nil
}

// prepare opens the tree and gathers the peel's id and facts.
func (cfg JobConfig) prepare(ctx context.Context, env *funcs.Env) (fs.FS, Options, error) {
	fsys, err := cfg.tree(ctx, env)
	if err != nil {
		return nil, Options{}, err
	}
	opt, err := cfg.options(ctx, env)
	return fsys, opt, err
}

func (cfg JobConfig) options(ctx context.Context, env *funcs.Env) (Options, error) {
	opt := Options{Funcs: cfg.Funcs, Limits: cfg.Limits, Table: cfg.Table}
	if env != nil {
		opt.ID = env.PeelID
		if env.Facts != nil {
			f, err := env.Facts(ctx, false)
			if err != nil {
				return opt, fmt.Errorf("facts: %w", err)
			}
			if m, ok := f.(map[string]any); ok {
				opt.Facts = m
			}
		}
		// {{ setting "a:b" }} reads the peel's settings (secrets stay
		// secrets: the runner masks them in every result).
		if cfg.Settings != nil && opt.Funcs.Setting == nil {
			opt.Funcs.Setting = settingLookup(cfg.Settings)
		}
		// {{ basket TARGET NAME }} reads through the peel's basket.get
		// (targets are compound expressions, as in settings), unless the
		// configuration gives its own.
		if env.Basket != nil && opt.Funcs.Basket == nil {
			opt.Funcs.Basket = func(tgt, name string) (map[string]any, error) {
				return env.Basket(ctx, string(target.KindCompound), tgt, name)
			}
		}
	}
	return opt, nil
}

// settingLookup is {{ setting KEY }} over the settings load gives, loaded
// at the first lookup of a run: every template of one run sees the same
// render.
func settingLookup(load func() (*settings.Result, error)) func(string) (any, error) {
	var once sync.Once
	var res *settings.Result
	var lerr error
	return func(key string) (any, error) {
		once.Do(func() { res, lerr = load() })
		if lerr != nil {
			return nil, fmt.Errorf("setting %q: %w", key, lerr)
		}
		v, ok := res.Get(key)
		if !ok {
			return nil, fmt.Errorf("%q is %w in this peel's settings (files %s)", key, render.ErrNotSet, strings.Join(res.Files, ", "))
		}
		return v, nil
	}
}

func compileErr(err error) error {
	var fe *funcs.Error
	if errors.As(err, &fe) {
		return err
	}
	return &funcs.Error{Code: CodeCompile, Msg: err.Error()}
}

// Whether a state job takes sls names.
const (
	modsOptional = iota
	modsRequired
	modsRefused
)

var errBusy = &funcs.Error{Code: CodeBusy, Msg: "another state run is in progress on this peel; try again when it ends"}

// lock takes the state-run lock: the process's, and LockFile's (an
// flock), which the daemon and zester-peel call share. A LockFile whose
// directory does not exist (a host without a peel's data_dir) is skipped.
func (cfg JobConfig) lock() (func(), error) {
	if !running.TryLock() {
		return nil, errBusy
	}
	if cfg.LockFile == "" {
		return running.Unlock, nil
	}
	f, err := os.OpenFile(cfg.LockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return running.Unlock, nil
	}
	if err != nil {
		running.Unlock()
		return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: "state lock: " + err.Error()}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		running.Unlock()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, &funcs.Error{Code: funcs.CodeFailed, Msg: "state lock: " + err.Error()}
	}
	return func() {
		f.Close() // releases the flock
		running.Unlock()
	}, nil
}

// job is a state job function: it compiles the named sls (or the
// highstate) and runs the plan, or (!run) returns its declarations.
func (cfg JobConfig) job(name string, mods int, run bool) funcs.Func {
	return func(ctx context.Context, env *funcs.Env, raw json.RawMessage) (any, error) {
		a, err := parseJobArgs(raw, mods != modsRefused)
		if err != nil {
			return nil, err
		}
		if mods == modsRequired && len(a.mods) == 0 {
			return nil, badArgs("%s needs an sls name", name)
		}
		fsys, opt, err := cfg.prepare(ctx, env)
		if err != nil {
			return nil, err
		}
		var p *Plan
		if len(a.mods) == 0 {
			p, err = CompileHighstate(ctx, fsys, opt)
		} else {
			p, err = Compile(ctx, fsys, a.mods, opt)
		}
		if err != nil {
			return nil, compileErr(err)
		}
		if !run {
			return p.High(), nil
		}
		// One state run at a time: two runs would interleave their
		// changes to the same files and services. A second is refused,
		// as Salt refuses it, rather than queued behind a long run.
		unlock, err := cfg.lock()
		if err != nil {
			return nil, err
		}
		defer unlock()
		return p.Apply(ctx, RunOptions{Options: opt, Test: a.test, Root: cfg.Root, Tree: fsys, Log: cfg.Log}), nil
	}
}

func (cfg JobConfig) showTop(ctx context.Context, env *funcs.Env, raw json.RawMessage) (any, error) {
	if _, err := parseJobArgs(raw, false); err != nil {
		return nil, err
	}
	fsys, opt, err := cfg.prepare(ctx, env)
	if err != nil {
		return nil, err
	}
	top, err := Top(ctx, fsys, opt)
	if err != nil {
		return nil, compileErr(err)
	}
	return top, nil
}
