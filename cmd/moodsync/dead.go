package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// deadCommand lists, replays and drops dead letters (publisher/deadletter).
type deadCommand struct {
	stdout, stderr io.Writer
	// stdin is where replay and drop ask for confirmation without --yes,
	// when it is a terminal.
	stdin io.Reader

	// replayed, when set, is told of each letter once it is replayed
	// (tests interrupt a replay with it).
	replayed func(deadletter.Letter)
}

const deadUsage = `Usage:

	moodsync dead list   [--user SUB] [--reason TEXT] [--since AGE|TIME] [--json]
	moodsync dead replay [--user SUB] [--reason TEXT] [--since AGE|TIME] [--dry-run | --yes]
	moodsync dead drop   [--user SUB] [--reason TEXT] [--since AGE|TIME] [--dry-run | --yes]

Dead letters are intents moodsync could not apply, kept in MOODSYNC_DEAD with
the reason. Fix the cause (the password in the users row, a missing PDS
account, a deactivated account), then replay them: each is published again on
its intent subject and removed once JetStream has stored it, so an interrupted
replay loses nothing. Intents malformed in themselves (bad JSON, unknown op,
bad id, op not matching the subject) and cut payloads are never replayed: drop
them once the app is fixed.

--since takes an age (24h) or a time (2025-10-14T19:30:00Z). Without --yes,
replay and drop ask on a terminal and refuse anywhere else.
`

func (c *deadCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(c.stdout, deadUsage)
		if len(args) == 0 {
			return exitError{2}
		}
		return nil
	}
	action := args[0]
	if action != "list" && action != "replay" && action != "drop" {
		fmt.Fprintf(c.stderr, "moodsync dead: unknown action %q\n\n%s", action, deadUsage)
		return exitError{2}
	}
	var cfg Config
	var user, reason, since string
	var asJSON, dryRun, yes bool
	fs := flag.NewFlagSet("dead "+action, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configFlags{fs, &cfg}.natsOnly()
	fs.StringVar(&user, "user", "", "only dead letters of this user (Auth0 sub)")
	fs.StringVar(&reason, "reason", "", "only dead letters whose reason contains this text (any case)")
	fs.StringVar(&since, "since", "", "only dead letters this recent: an age (24h) or a time (RFC3339)")
	if action == "list" {
		fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	} else {
		fs.BoolVar(&dryRun, "dry-run", false, "print what would be done, and do nothing")
		fs.BoolVar(&yes, "yes", false, "act without asking")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	filter := deadletter.Filter{User: user, Reason: reason}
	var err error
	if filter.Since, err = parseSince(since, time.Now()); err != nil {
		return err
	}
	ask := action != "list" && !yes && !dryRun
	if ask && !isTerminal(c.stdin) {
		fmt.Fprintf(c.stderr, "moodsync dead %s: refusing to act without --yes (there is no terminal to ask on); --dry-run shows what it would do\n", action)
		return exitError{2}
	}

	inf, err := openNATSOnly(&cfg, c.stderr)
	if err != nil {
		return err
	}
	defer inf.Close()
	box, err := deadletter.Open(ctx, inf.JS)
	if err != nil {
		return err
	}
	letters, err := box.List(ctx, filter)
	if err != nil {
		return err
	}
	if action == "list" {
		if asJSON {
			return writeDeadJSON(c.stdout, letters)
		}
		writeDeadList(c.stdout, letters)
		return nil
	}

	plan := planDead(action, letters)
	switch {
	case dryRun:
		writeDeadDryRun(c.stdout, plan)
		return nil
	case len(plan.act) == 0:
		fmt.Fprintf(c.stdout, "%s\n", plan.summary(false))
		return nil
	case ask && !c.confirm(plan):
		fmt.Fprintln(c.stdout, "nothing changed")
		return nil
	}
	if action == "replay" {
		// The intents stream may not exist yet (the daemon never ran on
		// this NATS): create it, so a replay is kept, not refused.
		if err := publisher.EnsureStreams(ctx, inf.JS); err != nil {
			return err
		}
	}
	done := 0
	for _, l := range plan.act {
		if action == "replay" {
			err = box.Replay(ctx, l)
		} else {
			err = box.Drop(ctx, l)
		}
		if err != nil {
			fmt.Fprintf(c.stdout, "%s\n", plan.progress(done))
			if action == "replay" {
				return fmt.Errorf("stopped (run it again to finish; an intent stored whose letter was not yet removed is replayed again, which is harmless): %w", err)
			}
			return fmt.Errorf("stopped (run it again to finish): %w", err)
		}
		done++
		fmt.Fprintf(c.stdout, "%s %d %s %s %s\n", plan.done, l.Seq, l.Subject, dash(l.User), dash(l.MongoID))
		if action == "replay" && c.replayed != nil {
			c.replayed(l)
		}
	}
	fmt.Fprintf(c.stdout, "%s\n", plan.summary(false))
	return nil
}

// parseSince reads --since: empty (no bound), an age, or an RFC3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("bad --since %q: an age cannot be negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad --since %q: want an age (24h, 90m) or a time (2025-10-14T19:30:00Z)", s)
	}
	return t, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm shows the plan and asks on the terminal whether to carry it out.
func (c *deadCommand) confirm(p deadPlan) bool {
	writeDeadPlan(c.stdout, p)
	fmt.Fprintf(c.stderr, "%s %s? [y/N] ", p.verb, plural(len(p.act), "dead letter", "dead letters"))
	line, _ := bufio.NewReader(c.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}

// deadPlan is what replay or drop will do with the selected letters.
type deadPlan struct {
	verb, done string // "replay", "replayed"
	act        []deadletter.Letter
	skip       []skipped
}

type skipped struct {
	letter deadletter.Letter
	why    error
}

func planDead(action string, letters []deadletter.Letter) deadPlan {
	p := deadPlan{verb: action, done: map[string]string{"replay": "replayed", "drop": "dropped"}[action]}
	for _, l := range letters {
		if action == "replay" {
			if err := deadletter.Replayable(l); err != nil {
				p.skip = append(p.skip, skipped{l, err})
				continue
			}
		}
		p.act = append(p.act, l)
	}
	return p
}

func (p deadPlan) summary(dry bool) string {
	verb := p.done
	if dry {
		verb = "would " + p.verb
	}
	s := fmt.Sprintf("%s %s", verb, plural(len(p.act), "dead letter", "dead letters"))
	if len(p.skip) > 0 {
		s += fmt.Sprintf("; %d cannot be replayed (drop them once the app is fixed)", len(p.skip))
	}
	return s
}

func (p deadPlan) progress(done int) string {
	return fmt.Sprintf("%s %d of %d dead letters", p.done, done, len(p.act))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeDeadPlan prints a line per selected letter: what will be done
// with it, and why (the dead letter's reason, or why it is skipped).
func writeDeadPlan(w io.Writer, p deadPlan) {
	if len(p.act)+len(p.skip) == 0 {
		fmt.Fprintln(w, "no dead letters selected")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSEQ\tSUBJECT\tUSER\tMONGOID\tWHY")
	for _, l := range p.act {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.verb, l.Seq, l.Subject, dash(l.User), dash(l.MongoID), reasonText(l))
	}
	for _, s := range p.skip {
		fmt.Fprintf(tw, "skip\t%d\t%s\t%s\t%s\t%s\n", s.letter.Seq, dash(s.letter.Subject), dash(s.letter.User), dash(s.letter.MongoID), s.why)
	}
	tw.Flush()
}

// writeDeadDryRun is what replay or drop --dry-run prints.
func writeDeadDryRun(w io.Writer, p deadPlan) {
	writeDeadPlan(w, p)
	fmt.Fprintf(w, "dry run: %s; nothing changed\n", p.summary(true))
}

// reasonText is a letter's reason, marked when its payload was cut.
func reasonText(l deadletter.Letter) string {
	if l.Truncated {
		return l.Reason + " (payload truncated)"
	}
	return l.Reason
}

// writeDeadList prints the letters as a table, oldest first.
func writeDeadList(w io.Writer, letters []deadletter.Letter) {
	if len(letters) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEQ\tSUBJECT\tUSER\tMONGOID\tDELIVERIES\tREASON")
	for _, l := range letters {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", l.Time.UTC().Format(time.RFC3339), l.Seq, dash(l.Subject),
			dash(l.User), dash(l.MongoID), l.Deliveries, reasonText(l))
	}
	tw.Flush()
	fmt.Fprintf(w, "%s in %s\n", plural(len(letters), "dead letter", "dead letters"), intent.DeadStream)
}

// deadList is the JSON form of dead list.
type deadList struct {
	Letters []deadletter.Letter `json:"letters"`
}

func writeDeadJSON(w io.Writer, letters []deadletter.Letter) error {
	if letters == nil {
		letters = []deadletter.Letter{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(deadList{Letters: letters})
}
