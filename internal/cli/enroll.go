package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/sig"
)

// stdin is where confirmations are read (tests replace it).
var stdin io.Reader = os.Stdin

func (a *app) enrollCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "enroll",
		Short: "Peel enrollment: list requests, accept, reject, revoke, delete; enrollment tokens",
		Long: `New peels ask to enroll with the bootstrap credential (peel.yaml enroll_creds)
and wait for a decision, unless master.yaml's enroll.auto_accept or an
enrollment token (peel.yaml enroll_token) admits them. Like salt-key.

Decisions are made by a master (it issues and revokes credentials) and need
the admin role; each is an audit event in job-events naming who decided (the
user of the CLI's credentials, authenticated by its signature).`,
	}
	c.AddCommand(a.enrollListCmd())
	for _, act := range []struct {
		act   enroll.Action
		short string
	}{
		{enroll.ActAccept, "Accept pending (or rejected) requests: the peels get their credentials"},
		{enroll.ActReject, "Reject pending requests"},
		{enroll.ActRevoke, "Revoke accepted peels: their connections are closed and they cannot reconnect"},
		{enroll.ActDelete, "Delete records (an accepted peel's key is revoked first); the peel may ask again"},
	} {
		c.AddCommand(a.enrollDecideCmd(act.act, act.short))
	}
	c.AddCommand(a.enrollTokenCmd())
	return c
}

func (a *app) enrollListCmd() *cobra.Command {
	var asJSON bool
	var state string
	c := &cobra.Command{
		Use:   "list [ID|GLOB...] [--state pending|accepted|rejected|revoked] [--json]",
		Short: "List enrollment records",
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" {
				switch enroll.State(state) {
				case enroll.StatePending, enroll.StateAccepted, enroll.StateRejected, enroll.StateRevoked:
				default:
					return withCode(ExitError, fmt.Errorf("--state %q: want pending, accepted, rejected or revoked", state))
				}
			}
			var recs []enroll.Record
			for after := ""; ; {
				rep, err := a.enrollCall(cmd.Context(), enroll.AdminList, enroll.AdminRequest{Targets: args, After: after})
				if err != nil {
					return err
				}
				for _, r := range rep.Records {
					if state == "" || r.State == enroll.State(state) {
						recs = append(recs, r)
					}
				}
				if !rep.More {
					break
				}
				after = rep.Last
			}
			err := a.emit(asJSON, recs, "ID\tSTATE\tKEY\tREQUESTED\tDECIDED BY\tVIA\tCREDS EXPIRE", func(tw io.Writer) {
				for _, r := range recs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, shortKey(r.NKey), when(r.Requested), dash(r.DecidedBy), dash(r.Via), when(r.Expires))
				}
			})
			if len(recs) == 0 && !asJSON {
				fmt.Fprintln(a.errOut, "no enrollment records")
			}
			return err
		},
	}
	jsonFlag(c, &asJSON, "print the records as JSON")
	c.Flags().StringVar(&state, "state", "", "only records in this state")
	return c
}

func (a *app) enrollDecideCmd(act enroll.Action, short string) *cobra.Command {
	var yes, allPending bool
	var reason string
	c := &cobra.Command{
		Use:   string(act) + " [ID|GLOB...] [--yes] [--reason TEXT]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !allPending {
				return withCode(ExitError, fmt.Errorf("name the peels (ids or globs)%s", map[bool]string{true: " or --all-pending"}[act == enroll.ActAccept || act == enroll.ActReject]))
			}
			ctx := cmd.Context()
			// First what would change (in pages), then, confirmed, exactly
			// that: the masters act only on the records shown, with the
			// keys shown, MaxExpect at a time.
			var plan []enroll.Change
			for after := ""; ; {
				rep, err := a.enrollCall(ctx, string(act), enroll.AdminRequest{Targets: args, AllPending: allPending, DryRun: true, After: after})
				if err != nil {
					return err
				}
				a.printSkipped(rep.Skipped)
				plan = append(plan, rep.Changed...)
				if !rep.More {
					break
				}
				after = rep.Last
			}
			if len(plan) == 0 {
				return withCode(ExitError, fmt.Errorf("nothing to %s", act))
			}
			if !yes {
				fmt.Fprintf(a.errOut, "%s %d peel(s):\n", act, len(plan))
				for i, ch := range plan {
					if i == 50 && len(plan) > 60 {
						fmt.Fprintf(a.errOut, "  … and %d more (zester enroll list shows them)\n", len(plan)-i)
						break
					}
					fmt.Fprintf(a.errOut, "  %s\t%s\tkey %s\n", ch.ID, ch.From, ch.NKey)
				}
				if !confirm(a.errOut, "Proceed? [y/N] ") {
					return withCode(ExitError, errors.New("not confirmed (use --yes to skip the question)"))
				}
			}
			changed, by := 0, ""
			for start := 0; start < len(plan); start += enroll.MaxExpect {
				chunk := plan[start:min(start+enroll.MaxExpect, len(plan))]
				req := enroll.AdminRequest{Reason: reason, Expect: map[string]string{}}
				for _, ch := range chunk {
					req.Expect[ch.ID] = ch.NKey
				}
				rep, err := a.enrollCall(ctx, string(act), req)
				if err != nil {
					return err
				}
				for _, ch := range rep.Changed {
					to := string(ch.To)
					if to == "" {
						to = "deleted"
					}
					fmt.Fprintf(a.out, "%s: %s → %s\n", ch.ID, ch.From, to)
				}
				a.printSkipped(rep.Skipped)
				changed += len(rep.Changed)
				by = rep.By
			}
			fmt.Fprintf(a.errOut, "decided by %s\n", by)
			if changed < len(plan) {
				return withCode(ExitFailed, fmt.Errorf("%d of %d peel(s) not changed", len(plan)-changed, len(plan)))
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().StringVar(&reason, "reason", "", "why (recorded with the decision)")
	if act == enroll.ActAccept || act == enroll.ActReject {
		c.Flags().BoolVarP(&allPending, "all-pending", "A", false, "every pending request (salt-key -A / -R)")
	}
	return c
}

func (a *app) printSkipped(skipped []enroll.Skip) {
	for _, s := range skipped {
		fmt.Fprintf(a.errOut, "%s (%s): skipped: %s\n", s.ID, s.State, s.Reason)
	}
}

func (a *app) enrollTokenCmd() *cobra.Command {
	var reusable bool
	var expires time.Duration
	var note string
	create := &cobra.Command{
		Use:   "create [--reusable] [--expires DURATION] [--note TEXT]",
		Short: "Create a token; it is printed once and stored only as its SHA-256",
		Long: `Create an enrollment token. A peel whose peel.yaml has it as enroll_token is
accepted without a decision. A one-time token admits one peel; --reusable
admits any number until it expires or is deleted. The token is printed once;
the masters keep only its SHA-256. Treat it as a password.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires < 0 {
				return withCode(ExitError, fmt.Errorf("--expires %s: negative", expires))
			}
			rep, err := a.enrollCall(cmd.Context(), enroll.AdminTokenCreate, enroll.AdminRequest{Reusable: reusable, TokenTTL: expires, Note: note})
			if err != nil {
				return err
			}
			if rep.Secret == "" || len(rep.Tokens) != 1 {
				return withCode(ExitError, errors.New("the master returned no token"))
			}
			fmt.Fprintln(a.out, rep.Secret)
			t := rep.Tokens[0]
			fmt.Fprintf(a.errOut, "token %s (%s, expires %s): put it in peel.yaml as enroll_token; it is not shown again\n", t.ID, tokenKind(t.Reusable), whenNever(t.Expires))
			return nil
		},
	}
	create.Flags().BoolVar(&reusable, "reusable", false, "admit any number of peels (default: one)")
	create.Flags().DurationVar(&expires, "expires", 0, "validity, e.g. 24h (default: until deleted)")
	create.Flags().StringVar(&note, "note", "", "what the token is for")
	var asJSON bool
	list := command("list [--json]", "List tokens (ids, never the secrets)", cobra.NoArgs, func(cmd *cobra.Command, _ []string) error {
		rep, err := a.enrollCall(cmd.Context(), enroll.AdminTokenList, enroll.AdminRequest{})
		if err != nil {
			return err
		}
		return a.emit(asJSON, rep.Tokens, "ID\tKIND\tUSES\tEXPIRES\tCREATED BY\tNOTE", func(tw io.Writer) {
			for _, t := range rep.Tokens {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, tokenKind(t.Reusable), t.Uses, whenNever(t.Expires), t.CreatedBy, dash(t.Note))
			}
		})
	})
	jsonFlag(list, &asJSON, "print the tokens as JSON")
	del := command("delete ID...", "Delete tokens", cobra.MinimumNArgs(1), func(cmd *cobra.Command, args []string) error {
		rep, err := a.enrollCall(cmd.Context(), enroll.AdminTokenDelete, enroll.AdminRequest{TokenIDs: args})
		if err != nil {
			return err
		}
		for _, t := range rep.Tokens {
			fmt.Fprintf(a.out, "token %s deleted\n", t.ID)
		}
		for _, s := range rep.Skipped {
			fmt.Fprintf(a.errOut, "token %s: %s\n", s.ID, s.Reason)
		}
		if len(rep.Skipped) > 0 {
			return withCode(ExitFailed, fmt.Errorf("%d token(s) not found", len(rep.Skipped)))
		}
		return nil
	})
	return group("token", "Enrollment tokens: admit peels that present one (peel.yaml enroll_token)", create, list, del)
}

// enrollCall sends one admin request to the masters, signed with the
// --creds credentials when there are any (the master then records the
// authenticated user as the decider).
func (a *app) enrollCall(ctx context.Context, op string, req enroll.AdminRequest) (*enroll.AdminReply, error) {
	if err := a.connect(ctx); err != nil {
		return nil, err
	}
	// Only full-access users may publish on the decision subjects: say so
	// at once instead of waiting out a request the server drops.
	if s := a.signer; s != nil && s.Role() != string(pki.RoleAdmin) && s.Role() != sig.RoleMaster {
		return nil, withCode(ExitError, fmt.Errorf("enrollment needs the admin role: %s holds user %s, role %s", a.credsFile(), s.Name(), s.Role()))
	}
	req.Requester = requester()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Signed with the CLI's credentials like every API request: the master
	// records the signer as the decider and refuses anyone but an admin.
	m, err := a.request(rctx, names.EnrollAdminSubject(op), body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, withCode(ExitError, errors.New("no master answers enrollment requests (is a master running with a PKI, and are the credentials an admin's?)"))
		}
		return nil, withCode(ExitError, fmt.Errorf("enrollment request: %w", err))
	}
	var rep enroll.AdminReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return nil, withCode(ExitError, fmt.Errorf("master's answer: %w", err))
	}
	if rep.Error != "" {
		return nil, withCode(ExitError, errors.New(rep.Error))
	}
	return &rep, nil
}

// confirm asks on w and reads one answer from stdin; anything but y/yes,
// end of input included, is no.
func confirm(w io.Writer, question string) bool {
	fmt.Fprint(w, question)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func shortKey(k string) string {
	if len(k) > 12 {
		return k[:12] + "…"
	}
	return k
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

func whenNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}

// tokenKind is how a token is shown: reusable or one-time.
func tokenKind(reusable bool) string {
	if reusable {
		return "reusable"
	}
	return "one-time"
}
