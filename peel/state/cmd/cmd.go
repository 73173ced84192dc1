// Package cmd is the cmd state module: cmd.run runs a shell command,
// guarded by creates, unless and onlyif so that it runs only when needed
// (a command has no state of its own to compare: the guards are what make
// it idempotent). In test mode the guards run (they only look) and the
// command does not.
package cmd

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zester-io/zester/peel/state/mod"
)

// Register adds the cmd functions to t.
func Register(t *mod.Table) {
	args := []string{"cwd", "env", "runas", "creates", "unless", "onlyif", "shell", "timeout", "stdin", "success_retcodes"}
	// mod_watch of cmd.run runs the command (Salt's cmd.wait idiom, and
	// watch on cmd.run): only reached when the guards kept it from
	// running in its own turn.
	t.Add("cmd.run", mod.Entry{Fn: run, Watch: force, Args: args})
}

// spec is a parsed cmd.run.
type spec struct {
	name, shell, cwd, runas string
	env                     []string
	timeout                 time.Duration
	stdin                   []byte
	ok                      map[int]bool
}

func parse(env *mod.Env, name string, args mod.Args) (*spec, error) {
	s := &spec{name: name, shell: "/bin/sh", ok: map[int]bool{0: true}}
	var err error
	if v, ok, e := args.String("shell"); e != nil {
		return nil, e
	} else if ok {
		s.shell = v
	}
	if v, ok, e := args.String("cwd"); e != nil {
		return nil, e
	} else if ok {
		s.cwd = env.Path(v)
	}
	if s.runas, _, err = args.String("runas"); err != nil {
		return nil, err
	}
	if s.env, err = envList(args["env"]); err != nil {
		return nil, err
	}
	if v, ok, e := args.String("timeout"); e != nil {
		return nil, e
	} else if ok {
		if s.timeout, err = time.ParseDuration(v); err != nil {
			var secs float64
			if _, e := fmt.Sscan(v, &secs); e != nil || secs <= 0 {
				return nil, fmt.Errorf("timeout %q: want seconds or a duration (30s)", v)
			}
			s.timeout = time.Duration(secs * float64(time.Second))
		}
	}
	if v, ok, e := args.String("stdin"); e != nil {
		return nil, e
	} else if ok {
		s.stdin = []byte(v)
	}
	switch x := args["success_retcodes"].(type) {
	case nil:
	case int64:
		s.ok[int(x)] = true
	case []any:
		for _, e := range x {
			n, isInt := e.(int64)
			if !isInt {
				return nil, fmt.Errorf("success_retcodes: want numbers, got %v", e)
			}
			s.ok[int(n)] = true
		}
	default:
		return nil, fmt.Errorf("success_retcodes: want a number or a list of numbers")
	}
	return s, nil
}

// envList reads env: as Salt writes it (a list of one-key maps, or a map)
// into KEY=VALUE pairs, sorted for a stable order.
func envList(v any) ([]string, error) {
	var out []string
	add := func(m map[string]any) error {
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("env: bad variable name %q", k)
			}
			out = append(out, k+"="+fmt.Sprint(v))
		}
		return nil
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if err := add(x); err != nil {
			return nil, err
		}
	case []any:
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("env: want - NAME: value items, got %v", e)
			}
			if err := add(m); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("env: want a map or a list of - NAME: value")
	}
	sort.Strings(out)
	return out, nil
}

func (s *spec) command(script string) mod.Command {
	return mod.Command{Argv: []string{s.shell, "-c", script}, Dir: s.cwd, Env: s.env, User: s.runas, Timeout: s.timeout, Stdin: s.stdin}
}

func run(env *mod.Env, name string, args mod.Args) mod.Result { return do(env, name, args, true) }

// force runs the command whatever the guards say (mod_watch).
func force(env *mod.Env, name string, args mod.Args) mod.Result { return do(env, name, args, false) }

func do(env *mod.Env, name string, args mod.Args, guarded bool) mod.Result {
	s, err := parse(env, name, args)
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if guarded {
		why, err := mod.Guards(env, args, s.command)
		if err != nil {
			return mod.Fail(name, "%v", err)
		}
		if why != "" {
			return mod.Result{Name: name, Status: mod.OK, Comment: why}
		}
	}
	return exec(env, s)
}

func exec(env *mod.Env, s *spec) mod.Result {
	if env.Test {
		return mod.Result{Name: s.name, Status: mod.WouldChange, Comment: fmt.Sprintf("Command %q would have been executed", s.name)}
	}
	out, err := env.Run(env.Ctx, s.command(s.name))
	if err != nil {
		return mod.Result{Name: s.name, Status: mod.Failed, Comment: err.Error(),
			Changes: map[string]any{"retcode": out.Code, "stdout": out.Stdout, "stderr": out.Stderr}}
	}
	r := mod.Result{Name: s.name, Status: mod.OK, Comment: fmt.Sprintf("Command %q run", s.name),
		Changes: map[string]any{"retcode": out.Code, "stdout": out.Stdout, "stderr": out.Stderr}}
	if !s.ok[out.Code] {
		r.Status = mod.Failed
		r.Comment = fmt.Sprintf("Command %q run; exited with status %d", s.name, out.Code)
	}
	return r
}
