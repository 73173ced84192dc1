package peel_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/peelproto"
	"github.com/zester-io/zester/internal/testkit"
	"github.com/zester-io/zester/internal/wire"
	"github.com/zester-io/zester/master/mastertest"
	"github.com/zester-io/zester/peel"
	"github.com/zester-io/zester/peel/peeltest"
	"github.com/zester-io/zester/shard"
	"github.com/zester-io/zester/topology"
)

// The per-peel permission block of docs/security.md is enough for presence
// and the one-process-per-id check: a confined peel beats (a job finds it
// online and runs), and a second process with its id and user is refused.
func TestPeel_ConfinedPermissions_BeatsAndRefusesClone(t *testing.T) {
	const id = "web1.example.com"
	tok, part := names.Token(id), shard.Partition(id, shard.DefaultPartitions)
	s, err := topology.StartServer(topology.ServerConfig{Listen: "127.0.0.1:-1", StoreDir: filepath.Join(t.TempDir(), "nats"),
		Tune: func(o *server.Options) {
			o.Users = []*server.User{
				{Username: "master", Password: "m"},
				{Username: id, Password: "p", Permissions: &server.Permissions{
					Publish: &server.SubjectPermission{Allow: []string{
						"zester.api.info",
						"$KV.facts." + id,
						"$KV.job-returns.*." + id,
						"$JS.API.DIRECT.GET.KV_job-returns.$KV.job-returns.*." + id,
						names.BeatSubject(part, id),
						names.PeelInbox(id),
						"_INBOX." + tok + ".>",
					}},
					Subscribe: &server.SubjectPermission{Allow: []string{
						names.JobSubject(part), names.ControlSubject(part), names.PeelInbox(id), "_INBOX." + tok + ".>",
					}},
				}},
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	withUser := func(user, pw string) string {
		u, _ := url.Parse(s.ClientURL())
		u.User = url.UserPassword(user, pw)
		return u.String()
	}
	masterURL, peelURL := withUser("master", "m"), withUser(id, "p")
	mastertest.Start(t, mastertest.Config("m1", masterURL))
	first := peeltest.Start(t, peeltest.Config(t, id, peelURL))

	nc, err := nats.Connect(masterURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	j := waitJob(t, js, submit(t, nc, wire.RunRequest{Target: wire.Target{Expr: "*"}, Function: "test.ping", Timeout: wire.Duration(30 * time.Second)}), 40*time.Second)
	if j.Status != wire.StatusDone || j.Returned != 1 || j.Offline != 0 {
		t.Fatalf("job on the confined peel: %+v", j)
	}
	p, err := peel.New(peeltest.Config(t, id, peelURL), peel.Options{Logger: testkit.Logger(), NoHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var dup *peelproto.ErrDuplicate
	if err := p.Run(ctx); !errors.As(err, &dup) || dup.Other.Instance != first.Instance() {
		t.Fatalf("clone under the same user: %v", err)
	}
}
