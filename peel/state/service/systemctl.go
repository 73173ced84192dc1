package service

import (
	"fmt"
	"strings"

	"github.com/zester-io/zester/peel/state/mod"
)

// systemctl drives systemd through its command-line client.
type systemctl struct{}

func (systemctl) status(env *mod.Env, name string) (unit, error) {
	if err := checkName(name); err != nil {
		return unit{}, err
	}
	argv := []string{"systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", name}
	out, err := env.Run(env.Ctx, mod.Command{Argv: argv})
	if err != nil {
		return unit{}, fmt.Errorf("systemctl: %w", err)
	}
	if out.Code != 0 {
		return unit{}, fmt.Errorf("%s exited %d: %s", strings.Join(argv, " "), out.Code, strings.TrimSpace(out.Stderr))
	}
	p := map[string]string{}
	for _, l := range strings.Split(out.Stdout, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
			p[k] = v
		}
	}
	if p["LoadState"] == "" {
		return unit{}, fmt.Errorf("%s: no LoadState in its output %q", strings.Join(argv, " "), out.Stdout)
	}
	st := p["UnitFileState"]
	return unit{
		loaded:  p["LoadState"] != "not-found",
		active:  p["ActiveState"] == "active" || p["ActiveState"] == "reloading",
		enabled: st == "enabled" || st == "enabled-runtime" || st == "alias",
		fileSt:  st,
	}, nil
}

func (systemctl) do(env *mod.Env, verb, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	argv := []string{"systemctl", verb, "--", name}
	out, err := env.Run(env.Ctx, mod.Command{Argv: argv})
	if err != nil {
		return fmt.Errorf("systemctl: %w", err)
	}
	if out.Code != 0 {
		msg := strings.TrimSpace(out.Stderr)
		if msg == "" {
			msg = strings.TrimSpace(out.Stdout)
		}
		return fmt.Errorf("systemctl %s %s exited %d: %s", verb, name, out.Code, msg)
	}
	return nil
}

// checkName refuses a name systemctl would read as an option or as
// several units.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("service name %q: not a unit name", name)
	}
	return nil
}
