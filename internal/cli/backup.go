package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/backup"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/version"
)

// DefaultBackupBase is where `zester backup` puts a backup without --dir:
// <base>/<YYYYmmdd-HHMMSS>, as the seed's hourly script does.
const DefaultBackupBase = "/backup/zester"

func backupZesterVersion() string { return version.String() }

func (a *app) backupCmd() *cobra.Command {
	var (
		dir     string
		streams []string
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "backup",
		Short: "Back up the JetStream streams of every bucket and job-events (nats stream backup layout plus a manifest)",
		Long: `Back up every KV bucket stream of the seed's backup script and the job-events stream,
each into DIR/<stream>/ in the layout of 'nats stream backup' (backup.json beside the
archive), and write DIR/manifest.json with counts and checksums. 'nats stream restore
DIR/<stream>' restores each stream as well as 'zester restore DIR' does.`,
		Example: `  zester backup
  zester backup --dir /backup/zester/before-upgrade --streams facts,enrollments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if dir == "" {
				dir = filepath.Join(DefaultBackupBase, time.Now().Format("20060102-150405"))
			}
			if err := a.connect(ctx); err != nil {
				return err
			}
			pp := newStreamProgress(a.errOut, "backup")
			m, err := backup.Run(ctx, a.nc, backup.Options{
				Dir:           dir,
				Streams:       streams,
				ZesterVersion: backupZesterVersion(),
				Progress:      pp.update,
			})
			if m == nil {
				return withCode(ExitError, err)
			}
			out := struct {
				Dir string `json:"dir"`
				*backup.Manifest
				Error string `json:"error,omitempty"`
			}{Dir: dir, Manifest: m, Error: errText(err)}
			var msgs, disk uint64
			jerr := a.emit(asJSON, out, "STREAM\tMESSAGES\tBYTES\tSUBJECTS\tSEQUENCES\tARCHIVE\tON DISK", func(tw io.Writer) {
				for _, s := range m.Streams {
					size := uint64(0)
					for _, f := range s.Files {
						size += uint64(f.Size)
					}
					msgs += s.Messages
					disk += size
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d..%d\t%s\t%s\n", s.Name, s.Messages, humanize.IBytes(s.Bytes), s.Subjects, s.FirstSeq, s.LastSeq, s.Archive, humanize.IBytes(size))
				}
				for _, f := range m.Failed {
					fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t%s\n", f.Stream, f.Error)
				}
			})
			if jerr != nil {
				return withCode(ExitError, jerr)
			}
			if !asJSON {
				fmt.Fprintf(a.out, "backup %s: %d streams, %d messages, %s on disk\n", dir, len(m.Streams), msgs, humanize.IBytes(disk))
			}
			if err != nil {
				return withCode(ExitError, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "backup directory (default "+DefaultBackupBase+"/<YYYYmmdd-HHMMSS>)")
	c.Flags().StringSliceVar(&streams, "streams", nil, "streams or buckets to back up, comma separated (default: every bucket of the seed's script and job-events)")
	jsonFlag(c, &asJSON, "JSON summary")
	c.AddCommand(a.backupVerifyCmd())
	return c
}

func (a *app) backupVerifyCmd() *cobra.Command {
	var (
		streams []string
		asJSON  bool
	)
	c := command("verify DIR", "Check a backup without a server: manifest, sizes, checksums, backup.json and every archive", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		rep, err := backup.Verify(args[0], streams)
		if asJSON {
			out := struct {
				*backup.Report
				OK       bool             `json:"ok"`
				Problems []backup.Problem `json:"problems,omitempty"`
			}{Report: rep, OK: err == nil}
			var ve *backup.VerifyError
			if errors.As(err, &ve) {
				out.Problems = ve.Problems
			}
			if jerr := writeJSON(a.out, out); jerr != nil {
				return withCode(ExitError, jerr)
			}
			if err != nil {
				return withCode(ExitFailed, nil)
			}
			return nil
		}
		a.printBackupReport(rep)
		if err != nil {
			return withCode(ExitFailed, err)
		}
		fmt.Fprintf(a.out, "backup %s is good: %d streams\n", args[0], len(rep.Streams))
		return nil
	})
	c.Flags().StringSliceVar(&streams, "streams", nil, "check only these streams or buckets, comma separated")
	jsonFlag(c, &asJSON, "JSON output")
	return c
}

func (a *app) printBackupReport(rep *backup.Report) {
	if rep == nil || len(rep.Streams) == 0 {
		return
	}
	if m := rep.Manifest; m != nil {
		fmt.Fprintf(a.out, "backup of %s by zester %s (server %s)\n", m.Created.Local().Format(time.DateTime), m.ZesterVersion, m.ServerVersion)
	} else {
		fmt.Fprintf(a.out, "backup without %s (nats stream backup layout)\n", backup.ManifestFile)
	}
	table(a.out, "STREAM\tMESSAGES\tBYTES\tSEQUENCES\tARCHIVE\tDIRECTORY", func(tw io.Writer) {
		for _, s := range rep.Streams {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d..%d\t%s\t%s\n", s.Name, s.Messages, humanize.IBytes(s.Bytes), s.FirstSeq, s.LastSeq, s.Archive, s.Dir)
		}
	})
}

func (a *app) restoreCmd() *cobra.Command {
	var (
		streams []string
		force   bool
		yes     bool
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "restore DIR",
		Short: "Restore streams from a backup (zester backup or the seed's nats stream backup script)",
		Long: `Verify the backup in DIR, then restore its streams. A stream that exists is deleted
first (JetStream restores only into an absent stream): you are asked unless --yes.
Restore refuses while masters are live (stop them first) unless --force. After each
stream the message count and last sequence are compared with the backup.

DIR may be a 'zester backup' directory, a directory made by the seed's script
(subdirectories each holding backup.json: the stream's name is read from it), or one
stream's backup directory.`,
		Example: `  systemctl stop zester-master
  zester restore /backup/zester/20260210-120000
  zester restore /backup/nats/20260210-120000 --streams facts,job-events --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir := args[0]
			// The backup is checked before the server is even contacted.
			rep, err := backup.Verify(dir, streams)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("%w\nnothing was restored", err))
			}
			var msgs uint64
			for _, s := range rep.Streams {
				msgs += s.Messages
			}
			fmt.Fprintf(a.errOut, "verified %s: %d streams, %d messages\n", dir, len(rep.Streams), msgs)
			if err := a.connect(ctx); err != nil {
				return err
			}
			plan, err := backup.PlanRestore(ctx, a.js, rep)
			if err != nil {
				return withCode(ExitError, err)
			}
			if len(plan.Live) > 0 {
				var ms []string
				for _, m := range plan.Live {
					ms = append(ms, fmt.Sprintf("%s (heartbeat %s ago)", m.ID, time.Since(m.LastBeat).Round(100*time.Millisecond)))
				}
				if !force {
					return withCode(ExitError, fmt.Errorf("masters are live: %s; stop them first (systemctl stop zester-master) or pass --force", strings.Join(ms, ", ")))
				}
				fmt.Fprintf(a.errOut, "WARNING: restoring while masters are live (--force): %s\n", strings.Join(ms, ", "))
			}
			if len(plan.Existing) > 0 {
				fmt.Fprintln(a.errOut, "These streams exist and will be DELETED, then restored from the backup:")
				table(a.errOut, "  STREAM\tMESSAGES NOW\tBYTES NOW\tMESSAGES IN BACKUP", func(tw io.Writer) {
					for _, e := range plan.Existing {
						fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\n", e.Name, e.Messages, humanize.IBytes(e.Bytes), rep.Stream(e.Name).Messages)
					}
				})
				if !yes {
					ok, err := a.confirmDestructive(fmt.Sprintf("Delete and restore %d streams?", len(plan.Existing)))
					if err != nil {
						return withCode(ExitError, err)
					}
					if !ok {
						return withCode(ExitError, errors.New("aborted: nothing was changed"))
					}
				}
			}
			pp := newStreamProgress(a.errOut, "restore")
			results, err := plan.Apply(ctx, a.nc, a.js, backup.ApplyOptions{Progress: pp.update})
			out := struct {
				Dir     string                 `json:"dir"`
				Streams []backup.RestoreResult `json:"streams"`
				Error   string                 `json:"error,omitempty"`
			}{Dir: dir, Streams: results, Error: errText(err)}
			jerr := a.emit(asJSON, out, "STREAM\tRESULT\tMESSAGES\tLAST SEQ\tNOTE", func(tw io.Writer) {
				for _, r := range results {
					res, note := "ok", r.Note
					if !r.OK() {
						res, note = "FAILED", r.Error
					}
					fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d/%d\t%s\n", r.Stream, res, r.Restored, r.Expected, r.LastSeq, r.ExpectedLastSeq, note)
				}
			})
			if jerr != nil {
				return withCode(ExitError, jerr)
			}
			if err != nil {
				return withCode(ExitError, err)
			}
			if !asJSON {
				fmt.Fprintf(a.out, "restored %d streams from %s\n", len(results), dir)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&streams, "streams", nil, "restore only these streams or buckets, comma separated")
	c.Flags().BoolVar(&force, "force", false, "restore even while masters are live")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "delete existing streams without asking")
	jsonFlag(c, &asJSON, "JSON summary")
	return c
}

func (a *app) purgeCmd() *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "purge",
		Short: "Remove old job returns, job events or a peel's facts (the seed's purge commands)",
		Long: `Purges are irreversible: take a backup first. Each purge shows what it will remove
and asks for confirmation unless --yes.`,
		Args: cobra.NoArgs,
	}
	c.PersistentFlags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")

	var olderThan string
	var all bool
	returns := command("job-returns (--older-than DURATION | --all)", "Remove job returns stored before DURATION ago (24h, 3d), or all of them", cobra.NoArgs, func(cmd *cobra.Command, _ []string) error {
		if (olderThan == "") == !all {
			return withCode(ExitError, errors.New("give exactly one of --older-than DURATION and --all"))
		}
		var d time.Duration
		if olderThan != "" {
			var err error
			if d, err = config.ParseDuration(olderThan); err != nil {
				return withCode(ExitError, err)
			}
			if d <= 0 {
				return withCode(ExitError, errors.New("--older-than must be more than 0 (use --all to remove everything)"))
			}
		}
		return a.runPurge(cmd, yes, func() (*backup.PurgePlan, error) { return backup.PlanPurgeReturns(cmd.Context(), a.js, d, all) })
	})
	returns.Flags().StringVar(&olderThan, "older-than", "", "remove returns stored before this long ago (e.g. 24h, 3d)")
	returns.Flags().BoolVar(&all, "all", false, "remove every job return (nats stream purge KV_job-returns --keep 0)")

	var keep int64 = -1
	events := command("job-events --keep N", "Remove job events but the newest N", cobra.NoArgs, func(cmd *cobra.Command, _ []string) error {
		if keep < 0 {
			return withCode(ExitError, errors.New("give --keep N (the number of newest events to keep)"))
		}
		return a.runPurge(cmd, yes, func() (*backup.PurgePlan, error) {
			return backup.PlanPurgeEvents(cmd.Context(), a.js, uint64(keep))
		})
	})
	events.Flags().Int64Var(&keep, "keep", -1, "number of newest events to keep")

	facts := command("facts PEEL", "Delete a peel's facts (nats kv del facts PEEL); a running peel republishes them at once", cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) error {
		return a.runPurge(cmd, yes, func() (*backup.PurgePlan, error) {
			return backup.PlanPurgeFacts(cmd.Context(), a.js, args[0])
		})
	})
	c.AddCommand(returns, events, facts)
	return c
}

func (a *app) runPurge(cmd *cobra.Command, yes bool, plan func() (*backup.PurgePlan, error)) error {
	if err := a.connect(cmd.Context()); err != nil {
		return err
	}
	p, err := plan()
	if err != nil {
		return withCode(ExitError, err)
	}
	if p.Remove == 0 {
		fmt.Fprintf(a.out, "nothing to purge in %s (%d messages, none match)\n", p.Stream, p.Messages)
		return nil
	}
	fmt.Fprintf(a.errOut, "This removes from %s: %s.\n", p.Stream, p.What)
	if !yes {
		ok, err := a.confirmDestructive("Purge? This cannot be undone.")
		if err != nil {
			return withCode(ExitError, err)
		}
		if !ok {
			return withCode(ExitError, errors.New("aborted: nothing was changed"))
		}
	}
	n, err := p.Apply(cmd.Context(), a.nc, a.js)
	if err != nil {
		return withCode(ExitError, err)
	}
	if p.Key != "" {
		fmt.Fprintf(a.out, "deleted %s from %s\n", p.Key, p.Bucket)
		if p.Bucket == names.BucketFacts {
			fmt.Fprintf(a.out, "peel %s republishes its facts when it is running\n", p.Key)
		}
		return nil
	}
	fmt.Fprintf(a.out, "purged %d messages from %s\n", n, p.Stream)
	return nil
}

// confirmDestructive asks on stderr and reads the answer from standard input.
func (a *app) confirmDestructive(question string) (bool, error) {
	fmt.Fprintf(a.errOut, "%s [y/N] ", question)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if !isTerminal(os.Stdin) && err == nil {
		fmt.Fprintln(a.errOut) // a terminal echoes the answer's newline; a pipe does not
	}
	if err != nil && strings.TrimSpace(line) == "" {
		fmt.Fprintln(a.errOut)
		return false, errors.New("no answer on standard input; pass --yes to go ahead without asking")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// streamProgress prints backup and restore progress on stderr: one updating line
// on a terminal, plain start and end lines otherwise.
type streamProgress struct {
	w    io.Writer
	tty  bool
	verb string
	last time.Time
	open bool
}

func newStreamProgress(w io.Writer, verb string) *streamProgress {
	return &streamProgress{w: w, tty: isTerminal(w), verb: verb}
}

func (p *streamProgress) update(pr backup.Progress) {
	switch pr.Phase {
	case backup.PhaseStart, backup.PhaseData:
		if !p.tty {
			if pr.Phase == backup.PhaseStart {
				fmt.Fprintf(p.w, "%s %s: started (~%s)\n", p.verb, pr.Stream, humanize.IBytes(pr.Total))
			}
			return
		}
		if pr.Phase == backup.PhaseData && time.Since(p.last) < 100*time.Millisecond {
			return
		}
		p.last = time.Now()
		line := fmt.Sprintf("%s %s: %s", p.verb, pr.Stream, humanize.IBytes(pr.Bytes))
		if pr.Total > 0 {
			line += fmt.Sprintf(" of ~%s (%d%%)", humanize.IBytes(pr.Total), min(100, pr.Bytes*100/pr.Total))
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.open = true
	case backup.PhaseDone:
		p.clear()
		switch {
		case pr.Entry != nil:
			e := pr.Entry
			fmt.Fprintf(p.w, "%s %s: %d messages, %s in %s\n", p.verb, pr.Stream, e.Messages, humanize.IBytes(e.Bytes), pr.Elapsed.Round(time.Millisecond))
		case pr.Result != nil:
			r := pr.Result
			fmt.Fprintf(p.w, "%s %s: %d of %d messages, last sequence %d, in %s\n", p.verb, pr.Stream, r.Restored, r.Expected, r.LastSeq, pr.Elapsed.Round(time.Millisecond))
		default:
			fmt.Fprintf(p.w, "%s %s: done in %s\n", p.verb, pr.Stream, pr.Elapsed.Round(time.Millisecond))
		}
	case backup.PhaseFailed:
		p.clear()
		fmt.Fprintf(p.w, "%s %s: FAILED: %v\n", p.verb, pr.Stream, pr.Err)
	}
}

func (p *streamProgress) clear() {
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
}

// errText is err's message, "" for none (an omitempty "error" field).
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
