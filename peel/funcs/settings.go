package funcs

import (
	"context"
	"encoding/json"
)

// CodeForbidden is the error code of a job that asked for more than its
// requester may have (reveal=true from a role that may not reveal).
const CodeForbidden = "forbidden"

// settingsArgs are the arguments of settings.get and settings.items.
type settingsArgs struct {
	Key     string          `json:"key"`
	Default json.RawMessage `json:"default"`
	Reveal  bool            `json:"reveal"`
}

// settingsOf returns the peel's settings for a job, revealed only when
// the job asked and may.
func settingsOf(ctx context.Context, env *Env, reveal bool) (map[string]any, error) {
	if env.Settings == nil {
		return nil, errorf(CodeFailed, "settings are not available in this agent")
	}
	if reveal && !env.MayReveal {
		return nil, errorf(CodeForbidden, "reveal=true needs a job signed by a requester whose role may reveal secrets (admin); secrets stay masked otherwise")
	}
	return env.Settings(ctx, reveal)
}

// settingsGet is Salt's pillar.get: the value at a colon path, or the
// default when it is not set.
func settingsGet(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a settingsArgs
	if err := decodeArgs(args, &a, "key", "default"); err != nil {
		return nil, err
	}
	if a.Key == "" {
		return nil, badArgs("argument \"key\": empty (want a colon path such as db:password; settings.items lists everything)")
	}
	tree, err := settingsOf(ctx, env, a.Reveal)
	if err != nil {
		return nil, err
	}
	v, err := lookupPath(tree, "key", a.Key)
	if err != nil && len(a.Default) > 0 {
		var d any
		if jerr := json.Unmarshal(a.Default, &d); jerr != nil {
			return nil, badArgs("argument \"default\": %v", jerr)
		}
		return d, nil
	}
	return v, err
}

func settingsItems(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Reveal bool `json:"reveal"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	return settingsOf(ctx, env, a.Reveal)
}
