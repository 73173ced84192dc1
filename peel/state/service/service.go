// Package service is the service state module: service.running,
// service.dead, service.enabled and service.disabled on systemd, and
// service.running's watch (Salt's mod_watch): restart, or reload with
// reload: true.
//
// Every function reads the unit's state first (one systemctl show), so a
// declaration that holds changes nothing and a second run reports no
// changes; test mode only reads. The backend is systemctl through
// Env.Run (the unit manager interface below is where a D-Bus backend
// would go; systemctl needs nothing but the binary and works in a chroot
// or container that talks to the host's systemd through its socket).
package service

import (
	"fmt"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// Register adds service.running (with its watch), service.dead,
// service.enabled and service.disabled to t.
func Register(t *mod.Table) {
	t.Add("service.running", mod.Entry{Fn: running, Watch: watch, Args: []string{"enable", "reload"}})
	t.Add("service.dead", mod.Entry{Fn: dead, Args: []string{"enable"}})
	t.Add("service.enabled", mod.Entry{Fn: enabled, Args: nil})
	t.Add("service.disabled", mod.Entry{Fn: disabled, Args: nil})
}

// unit is what the manager says about one unit.
type unit struct {
	loaded  bool   // the unit file exists (LoadState is not not-found)
	active  bool   // running (ActiveState active or reloading)
	enabled bool   // started at boot (UnitFileState enabled, enabled-runtime, alias)
	fileSt  string // UnitFileState as the manager reports it
}

// fixed reports a unit whose enablement is not a symlink to toggle:
// static (pulled in by others), generated, transient.
func (u unit) fixed() bool {
	switch u.fileSt {
	case "static", "generated", "transient", "indirect":
		return true
	}
	return false
}

// manager is a service manager. Its methods act on one unit each and
// return when the manager has done it (systemctl waits for the job).
type manager interface {
	status(env *mod.Env, name string) (unit, error)
	do(env *mod.Env, verb, name string) error // start stop restart reload enable disable
}

// backend is the service manager used: systemctl through Env.Run.
var backend manager = systemctl{}

func running(env *mod.Env, name string, args mod.Args) mod.Result {
	return ensure(env, name, args, true)
}

func dead(env *mod.Env, name string, args mod.Args) mod.Result {
	return ensure(env, name, args, false)
}

// ensure makes the unit active (or not) and, when args has enable, enabled
// (or not).
func ensure(env *mod.Env, name string, args mod.Args, active bool) mod.Result {
	enable, haveEnable, err := args.Bool("enable")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	if _, _, err := args.Bool("reload"); err != nil {
		return mod.Fail(name, "%v", err)
	}
	u, fail := loaded(env, name)
	if fail != nil {
		return *fail
	}
	var todo, said []string
	if u.active != active {
		if active {
			todo, said = append(todo, "start"), append(said, "started")
		} else {
			todo, said = append(todo, "stop"), append(said, "stopped")
		}
	}
	if haveEnable && !u.fixed() && u.enabled != enable {
		if enable {
			todo, said = append(todo, "enable"), append(said, "enabled")
		} else {
			todo, said = append(todo, "disable"), append(said, "disabled")
		}
	}
	state := "running"
	if !active {
		state = "dead"
	}
	return apply(env, name, todo, said, func(u unit) bool {
		return u.active == active && (!haveEnable || u.fixed() || u.enabled == enable)
	}, fmt.Sprintf("The service %s is already %s", name, state))
}

func enabled(env *mod.Env, name string, _ mod.Args) mod.Result {
	return toggle(env, name, true)
}

func disabled(env *mod.Env, name string, _ mod.Args) mod.Result {
	return toggle(env, name, false)
}

func toggle(env *mod.Env, name string, enable bool) mod.Result {
	u, fail := loaded(env, name)
	if fail != nil {
		return *fail
	}
	verb, past := "disable", "disabled"
	if enable {
		verb, past = "enable", "enabled"
	}
	if u.fixed() {
		return mod.Result{Name: name, Status: mod.OK, Comment: fmt.Sprintf("Service %s is %s: it has no install section to %s", name, u.fileSt, verb)}
	}
	var todo, said []string
	if u.enabled != enable {
		todo, said = []string{verb}, []string{past}
	}
	return apply(env, name, todo, said, func(u unit) bool { return u.enabled == enable },
		fmt.Sprintf("Service %s is already %s", name, past))
}

// loaded reads the unit; a unit systemd does not know fails the state.
func loaded(env *mod.Env, name string) (unit, *mod.Result) {
	u, err := backend.status(env, name)
	if err != nil {
		r := mod.Fail(name, "%v", err)
		return u, &r
	}
	if !u.loaded {
		r := mod.Fail(name, "The named service %s is not available", name)
		return u, &r
	}
	return u, nil
}

// apply runs the verbs (nothing in test mode), then checks with holds
// that the declaration is true.
func apply(env *mod.Env, name string, verbs, said []string, holds func(unit) bool, already string) mod.Result {
	if len(verbs) == 0 {
		return mod.Result{Name: name, Status: mod.OK, Comment: already}
	}
	ch := map[string]any{name: true}
	if env.Test {
		return mod.Result{Name: name, Status: mod.WouldChange, Changes: ch,
			Comment: fmt.Sprintf("Service %s would be %s", name, strings.Join(said, " and "))}
	}
	for i, v := range verbs {
		if err := backend.do(env, v, name); err != nil {
			r := mod.Fail(name, "Service %s: %v", name, err)
			if i > 0 {
				r.Changes = ch
			}
			return r
		}
	}
	u, err := backend.status(env, name)
	if err != nil {
		return mod.Result{Name: name, Status: mod.Failed, Changes: ch, Comment: err.Error()}
	}
	if !holds(u) {
		return mod.Result{Name: name, Status: mod.Failed, Changes: ch,
			Comment: fmt.Sprintf("Service %s was %s but is now active=%v, unit file %s", name, strings.Join(said, " and "), u.active, u.fileSt)}
	}
	return mod.Result{Name: name, Status: mod.OK, Changes: ch,
		Comment: fmt.Sprintf("Service %s has been %s", name, strings.Join(said, " and "))}
}

// watch is service.running's mod_watch: a state it watches changed, so the
// service restarts (or reloads with reload: true), or starts when it is
// not running. Salt's engine calls it after service.running itself
// changed nothing, so one watched change gives one restart.
func watch(env *mod.Env, name string, args mod.Args) mod.Result {
	reload, _, err := args.Bool("reload")
	if err != nil {
		return mod.Fail(name, "%v", err)
	}
	u, fail := loaded(env, name)
	if fail != nil {
		return *fail
	}
	verb, past := "restart", "restarted"
	switch {
	case !u.active:
		verb, past = "start", "started"
	case reload:
		verb, past = "reload", "reloaded"
	}
	return apply(env, name, []string{verb}, []string{past}, func(u unit) bool { return u.active }, "")
}
