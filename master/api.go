package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/target"
	"github.com/zester-io/zester/internal/wire"
)

// The master API is a nats.go micro service (`nats micro ls` lists it). Every
// endpoint is in a queue group, so any one live master answers.
func (m *Master) startAPI() error {
	svc, err := micro.AddService(m.nc, micro.Config{
		Name: names.ServiceName,
		// micro wants plain SemVer: a Go module version ("v0.0.0-2026…")
		// loses its "v".
		Version:     strings.TrimPrefix(Version, "v"),
		Description: "Zester master API",
		Metadata:    map[string]string{"master": m.cfg.ID},
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	g := svc.AddGroup(names.APIPrefix)
	add := func(name string, h micro.HandlerFunc) error {
		return g.AddEndpoint(strings.ReplaceAll(name, ".", "-"), h, micro.WithEndpointSubject(name))
	}
	if err := add(names.EndpointInfo, m.apiInfo); err != nil {
		return err
	}
	if err := add(names.EndpointJobRun, m.apiRun); err != nil {
		return err
	}
	if err := add(names.EndpointBasketGet, m.apiBasketGet); err != nil {
		return err
	}
	// Every master renders the partitions it owns: no queue group, the
	// CLI merges the answers (as for presence).
	if err := g.AddEndpoint("settings-refresh", micro.HandlerFunc(m.apiSettingsRefresh), micro.WithEndpointSubject("settings.refresh"), micro.WithEndpointQueueGroupDisabled()); err != nil {
		return err
	}
	// Every master answers presence for the partitions it owns: no queue
	// group, the CLI merges the answers.
	if err := g.AddEndpoint(names.EndpointPresence, micro.HandlerFunc(m.apiPresence), micro.WithEndpointSubject(names.EndpointPresence), micro.WithEndpointQueueGroupDisabled()); err != nil {
		return err
	}
	go func() {
		<-m.done
		svc.Stop()
	}()
	return nil
}

func respondJSON(req micro.Request, v any) {
	b, _ := json.Marshal(v)
	req.Respond(b)
}

func respondErr(req micro.Request, code string, err error) {
	b, _ := json.Marshal(wire.APIError{Error: err.Error()})
	req.Error(code, err.Error(), b)
}

// refuse answers a request that authorize turned down (no answer at all for
// one whose reply is not an inbox).
func refuse(req micro.Request, err error) {
	if errors.Is(err, errNoReply) {
		return
	}
	code := "500"
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.code
	}
	respondErr(req, code, err)
}

func (m *Master) apiInfo(req micro.Request) {
	if _, err := m.authorize(req, accessOpen); err != nil {
		refuse(req, err)
		return
	}
	respondJSON(req, wire.Info{Master: m.cfg.ID, Version: Version, Partitions: m.cfg.Partitions, Nodegroups: m.cfg.Nodegroups, MaxArgs: m.cfg.Jobs.MaxArgs.N()})
}

// NewJID returns a Salt-style job id (names.NewJID).
func NewJID(now time.Time) string { return names.NewJID(now) }

// ValidateRun checks a run request and returns the parsed target.
func (m *Master) ValidateRun(r *wire.RunRequest) (target.Expr, error) {
	if r.Function == "" {
		return nil, errors.New("function: empty")
	}
	if len(r.Function) > 128 {
		return nil, fmt.Errorf("function %.40q…: longer than 128 characters", r.Function)
	}
	for i, c := range r.Function {
		if !(c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return nil, fmt.Errorf("function %q: character %q at column %d is not allowed", r.Function, c, i+1)
		}
	}
	if int64(len(r.Args)) > m.cfg.Jobs.MaxArgs.N() {
		return nil, fmt.Errorf("arguments: %d bytes, over the maximum of %d (jobs.max_args)", len(r.Args), m.cfg.Jobs.MaxArgs.N())
	}
	if len(r.Args) > 0 && !json.Valid(r.Args) {
		return nil, errors.New("arguments: not valid JSON")
	}
	if r.JID != "" {
		if err := names.ValidateJID(r.JID); err != nil {
			return nil, err
		}
	}
	if r.Batch != "" {
		return nil, errors.New("batch: the master runs one job per request; run rolling batches from the client (zester run --batch N|P%)")
	}
	if r.Timeout.D() < 0 || r.Timeout.D() > m.cfg.Jobs.MaxTimeout.D() {
		return nil, fmt.Errorf("timeout %s: want 0 to %s (jobs.max_timeout)", r.Timeout.D(), m.cfg.Jobs.MaxTimeout.D())
	}
	return target.Parse(target.Kind(r.Target.Kind), r.Target.Expr, target.Options{Nodegroups: m.cfg.Nodegroups})
}

func (m *Master) apiRun(req micro.Request) {
	caller, err := m.authorize(req, accessRun)
	if err != nil {
		refuse(req, err)
		return
	}
	var r wire.RunRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil {
		respondErr(req, "400", fmt.Errorf("request: %w", err))
		return
	}
	expr, err := m.ValidateRun(&r)
	if err != nil {
		respondErr(req, "400", err)
		return
	}
	limited, err := checkLimits(caller, r.Function, expr, m.cfg.Nodegroups)
	if err != nil {
		m.apiRefused("limits").Inc()
		refuse(req, err)
		return
	}
	var asked *wire.Target
	if limited != expr {
		asked = &wire.Target{Kind: r.Target.Kind, Expr: r.Target.Expr}
		r.Target = wire.Target{Kind: string(target.KindCompound), Expr: limited.String()}
	}
	claimed := ""
	if !caller.Verified {
		claimed = r.Requester
	}
	timeout := r.Timeout.D()
	if timeout == 0 {
		timeout = m.cfg.Jobs.DefaultTimeout.D()
	}
	// A job submitted during a leader election waits for the new leader
	// (putOwn retries within writeWithin) rather than failing: a Create that
	// timed out may have committed, so the same record is retried, and only
	// a different record under our id (two masters in the same microsecond)
	// makes us draw a new id; under the client's id, answerTakenJID decides.
	ctx, cancel := context.WithTimeout(context.Background(), writeWithin)
	defer cancel()
	for attempt := 0; attempt < 5; attempt++ {
		now := time.Now().UTC()
		jid := r.JID
		if jid == "" {
			jid = NewJID(now)
		}
		job := wire.Job{
			JID: jid, Function: r.Function, Args: r.Args, Target: r.Target,
			Requester: caller.Name, RequesterKey: caller.Key, RequesterRole: string(caller.Role), Claimed: claimed,
			AskedTarget: asked, Master: m.cfg.ID, Partitions: m.cfg.Partitions,
			Timeout: wire.Duration(timeout), Created: now, Deadline: now.Add(timeout),
			Status: wire.StatusPending, StateTree: m.stateTreePin(ctx, r.Function),
		}
		b, _ := json.Marshal(job)
		_, err = putOwn(ctx, m.nc, m.kvJobs, names.JobKey(job.JID), b, 0)
		if errors.Is(err, jetstream.ErrKeyExists) {
			if r.JID != "" {
				m.answerTakenJID(ctx, req, &job)
				return
			}
			continue
		}
		if err != nil {
			m.met.errors.Inc()
			respondErr(req, "503", fmt.Errorf("record job %s in bucket %s (tried for %s): %w", job.JID, names.BucketJobs, time.Since(now).Round(time.Millisecond), err))
			return
		}
		m.met.jobsAccepted.Inc()
		m.event(wire.Event{JID: job.JID, Kind: "created", Status: wire.StatusPending,
			Detail: fmt.Sprintf("fn=%s target=%s requester=%s", r.Function, r.Target.Expr, caller.describe(claimed))})
		respondJSON(req, wire.RunResponse{JID: job.JID})
		return
	}
	respondErr(req, "503", fmt.Errorf("could not allocate a job id: %w", err))
}
