package funcs

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// settings.get and settings.items: secrets masked unless reveal=true from
// a job that may reveal; a missing key names what is there, or gives the
// default.
func TestSettingsFunctions(t *testing.T) {
	const pw = "s3cret-PLAIN"
	tree := func(reveal bool) map[string]any {
		p := "<secret>"
		if reveal {
			p = pw
		}
		return map[string]any{"db": map[string]any{"password": p, "port": 5432}, "pkgs": []any{"nginx"}}
	}
	env := &Env{Settings: func(_ context.Context, reveal bool) (map[string]any, error) { return tree(reveal), nil }}
	if res := mustRun(t, env, "settings.get", `["db:password"]`); res != "<secret>" {
		t.Fatalf("settings.get db:password = %#v", res)
	}
	if res := mustRun(t, env, "settings.get", `{"key": "pkgs:0"}`); res != "nginx" {
		t.Fatalf("settings.get pkgs:0 = %#v", res)
	}
	if res := mustRun(t, env, "settings.get", `{"key": "db:user", "default": "app"}`); res != "app" {
		t.Fatalf("default: %#v", res)
	}
	_, err := run(t, env, "settings.get", `{"key": "db:user"}`)
	wantCode(t, err, CodeBadArgs, `"user" not found at "db"`, "password, port")
	_, err = run(t, env, "settings.get", `{"key": "db:password", "reveal": true}`)
	wantCode(t, err, CodeForbidden, "admin")
	_, err = run(t, env, "settings.items", `{"reveal": true}`)
	wantCode(t, err, CodeForbidden)
	if res := mustRun(t, env, "settings.items", ``); !reflect.DeepEqual(res, tree(false)) || strings.Contains(fmt.Sprint(res), pw) {
		t.Fatalf("settings.items = %#v", res)
	}
	env.MayReveal = true
	if res := mustRun(t, env, "settings.get", `{"key": "db:password", "reveal": true}`); res != pw {
		t.Fatalf("revealed = %#v", res)
	}
	_, err = run(t, &Env{}, "settings.items", ``)
	wantCode(t, err, CodeFailed, "not available")
	_, err = run(t, env, "settings.get", `{}`)
	wantCode(t, err, CodeBadArgs, "empty")
}
