package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

// statusCommand prints what moodsync knows of one user (package status).
// It changes nothing.
type statusCommand struct{ stdout, stderr io.Writer }

func (c *statusCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("status", c.stderr, true)
	configFlags{f.fs, &f.cfg}.add("nats-url", "embed-nats-addr", "mass-delete-limit")
	var asJSON bool
	f.fs.BoolVar(&asJSON, "json", false, "print JSON (what GET /v1/users/{sub} on the HTTP port answers) instead of text")
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if f.user == "" {
		fmt.Fprintln(c.stderr, "moodsync status: --user is required")
		return exitError{2}
	}
	env, err := f.open(ctx, c.stderr)
	if err != nil {
		return err
	}
	defer env.in.Close()
	r := status.NewReader(env.store, env.engine.PDS, f.cfg.MassDeleteLimit)
	// Without NATS the queues' sections say why; the rest is shown.
	if r.NATSErr = env.in.openNATS(&f.cfg, env.log, embedShare); r.NATSErr == nil {
		r.Queues = deadletter.Queues{JS: env.in.JS}
	}
	u, err := r.Read(ctx, f.user)
	if err != nil {
		return err
	}
	if !u.Known() {
		return errUnknownUser(f.user)
	}
	if asJSON {
		return writeStatusJSON(c.stdout, u)
	}
	writeStatusText(c.stdout, u)
	return nil
}

func errUnknownUser(user string) error {
	return fmt.Errorf("moodsync knows nothing of %s: no users row, binding, mood, pending intent or dead letter", user)
}

// writeStatusJSON is the JSON form, the same for the CLI and HTTP.
func writeStatusJSON(w io.Writer, u *status.User) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(u)
}

// statusTime formats a time of the status.
func statusTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// writeStatusText writes the human form.
func writeStatusText(w io.Writer, u *status.User) {
	fmt.Fprintf(w, "👤 Status of %s\n", u.User)
	writeAccount(w, u)
	writeMoods(w, u.Moods)
	writeDrift(w, u)
	writeTrouble(w, u.Trouble)
	writePending(w, u.Intents)
	writeStatusLetters(w, u.User, u.DeadLetters)
	writeLast(w, u)
}

// writeAccount: the users row, the binding, the account status.
func writeAccount(w io.Writer, u *status.User) {
	switch row := u.UsersRow; {
	case u.UsersRowError != "":
		fmt.Fprintf(w, "users row: ❗ could not read: %s\n", u.UsersRowError)
	case row == nil:
		fmt.Fprintln(w, "users row: none")
	case row.DID == "":
		fmt.Fprintln(w, "users row: no ATProto account")
	default:
		pw := "password stored"
		if !row.HasPassword {
			pw = "⚠️  no password"
		}
		fmt.Fprintf(w, "users row: %s, handle %s, %s\n", row.DID, dash(row.Handle), pw)
	}
	b := u.Binding
	switch {
	case b == nil:
		fmt.Fprintln(w, "DID binding: none yet (bound at the first reconcile or write)")
	case b.Error != "":
		fmt.Fprintf(w, "DID binding: ❗ could not read: %s\n", b.Error)
	default:
		line := b.DID
		if u.UsersRow != nil && u.UsersRow.DID != "" && u.UsersRow.DID != b.DID {
			line += fmt.Sprintf(" (⚠️  the users row names %s: the next reconcile rebinds)", u.UsersRow.DID)
		}
		fmt.Fprintf(w, "DID binding: %s\n", line)
	}
	st := "none seen"
	if b != nil && b.Status != "" {
		st = b.Status + " (last seen " + statusTime(b.StatusAt) + ")"
	}
	if b != nil && b.Error == "" && b.Status != "" && b.Status != "active" {
		st = "⛔ " + st
	}
	fmt.Fprintf(w, "Account status: %s; %s\n", st, pdsText(u.PDS))
}

// pdsText is the PDS's word on the repo.
func pdsText(p *status.PDSStatus) string {
	switch {
	case p == nil:
		return "the PDS was not asked (no DID)"
	case p.Error != "":
		return "the PDS could not be asked: " + p.Error
	case p.Active:
		return "the PDS says: active"
	}
	return "the PDS says: " + p.Status
}

func writeMoods(w io.Writer, m status.Moods) {
	if m.Error != "" {
		fmt.Fprintf(w, "MongoDB moods: ❗ could not read: %s\n", m.Error)
		return
	}
	fmt.Fprintf(w, "MongoDB moods: %d\n", m.Total)
	fmt.Fprintf(w, "  ✅ Live, synced (rkey set): %d\n", m.LiveSynced)
	fmt.Fprintf(w, "  ⚠️  Live, not synced: %d\n", m.LiveNotSynced)
	optionalCount(w, "🗑️  Soft deleted, rkey still set", m.SoftDeletedWithRkey)
	fmt.Fprintf(w, "  🗑️  Soft deleted: %d\n", m.SoftDeletedWithoutRkey)
}

// writeDrift: the fresh compare, as audit shows a user.
func writeDrift(w io.Writer, u *status.User) {
	d := u.Drift
	if d.Summary == nil {
		fmt.Fprintf(w, "Drift: ❗ not compared: %s\n", d.Error)
		return
	}
	fmt.Fprintf(w, "Drift (fresh compare): %d to repair; notices: %d\n", d.Drift, d.Notices)
	writeATProtoCounts(w, d.ATProto)
	if len(d.Findings) > 0 {
		writeIssues(w, d.Findings)
	}
	writePlan(w, u.User, d.Summary)
}

// writeTrouble says whether the user is in trouble (parked).
func writeTrouble(w io.Writer, t *status.Trouble) {
	switch {
	case t == nil:
		fmt.Fprintln(w, "In trouble: no")
		return
	case t.Error != "":
		fmt.Fprintf(w, "In trouble: ❗ could not read: %s\n", t.Error)
		return
	}
	fmt.Fprintf(w, "In trouble: ⚠️  since %s; %d intents parked; %d retries failed; next try %s\n",
		statusTime(t.Since), t.Owed, t.Failures, statusTime(t.NextTry))
	if t.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", t.LastError)
	}
}

// writePending lists the user's intents waiting in the stream.
func writePending(w io.Writer, in status.Intents) {
	if in.Pending == nil {
		fmt.Fprintf(w, "Pending intents: ❗ could not read: %s\n", in.Error)
		return
	}
	p := in.Pending
	count := fmt.Sprint(p.Count)
	if !p.Complete {
		count = fmt.Sprintf("at least %d (read %d)", p.Count, p.Scanned)
	}
	fmt.Fprintf(w, "Pending intents: %s (of %d waiting in %s)\n", count, p.Waiting, intent.Stream)
	if len(p.Intents) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, i := range p.Intents {
		what := i.MongoID
		if i.Cause != "" {
			what = "cause " + i.Cause
		}
		fmt.Fprintf(tw, "  %s\tseq %d\t%s\t%s\n", statusTime(i.Time), i.Seq, dash(i.Op), dash(what))
	}
	tw.Flush()
	writeMore(w, p.Count, len(p.Intents))
}

// writeStatusLetters lists the user's dead letters.
func writeStatusLetters(w io.Writer, user string, d status.DeadLetters) {
	if d.Error != "" {
		fmt.Fprintf(w, "Dead letters: ❗ could not read: %s\n", d.Error)
		return
	}
	fmt.Fprintf(w, "Dead letters: %d\n", d.Count)
	if len(d.Letters) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range d.Letters {
		fmt.Fprintf(tw, "  %s\tseq %d\t%s\t%s\t%s\n", statusTime(l.Time), l.Seq, dash(l.Op), dash(l.MongoID), reasonText(l))
	}
	tw.Flush()
	writeMore(w, d.Count, len(d.Letters))
	fmt.Fprintf(w, "  (moodsync dead list --user '%s')\n", user)
}

func writeMore(w io.Writer, count, shown int) {
	if count > shown {
		fmt.Fprintf(w, "  +%d more\n", count-shown)
	}
}

// writeLast: the last firehose event and the last reconcile.
func writeLast(w io.Writer, u *status.User) {
	if e := u.LastEvent; e != nil {
		fmt.Fprintf(w, "Last firehose event: %s (%s, seq %d)\n", statusTime(e.At), e.Kind, e.Seq)
	} else {
		fmt.Fprintln(w, "Last firehose event: none recorded")
	}
	r := u.LastReconcile
	if r == nil {
		fmt.Fprintln(w, "Last reconcile: none recorded")
		return
	}
	fmt.Fprintf(w, "Last reconcile: %s (%s): drift %d, fixed %d", statusTime(r.At), r.Cause, r.Drift, r.Fixed)
	if r.Held > 0 {
		fmt.Fprintf(w, ", ⛔ %d held by the mass-delete guard", r.Held)
	}
	fmt.Fprintln(w)
	if r.Error != "" {
		fmt.Fprintf(w, "  ❗ %s\n", r.Error)
	}
}

// statusHandler serves GET /v1/users/{sub}: the JSON of `moodsync status
// --user SUB --json`, 404 when moodsync knows nothing of the user. At most
// two statuses are read at once (each exports a repo), each within a
// minute.
func statusHandler(r *status.Reader, log *slog.Logger) http.Handler {
	slots := make(chan struct{}, 2)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), time.Minute)
		defer cancel()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			http.Error(w, "busy: try again", http.StatusServiceUnavailable)
			return
		}
		user := req.PathValue("sub")
		u, err := r.Read(ctx, user)
		var body strings.Builder
		code := http.StatusOK
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = http.StatusGatewayTimeout
			err = json.NewEncoder(&body).Encode(map[string]string{"error": "status not read within a minute"})
		case err != nil:
			return // the client went away
		case !u.Known():
			code = http.StatusNotFound
			err = json.NewEncoder(&body).Encode(map[string]string{"error": errUnknownUser(user).Error()})
		default:
			err = writeStatusJSON(&body, u)
		}
		if err != nil {
			log.Warn("status: could not encode", "err", err)
			http.Error(w, "could not encode the status", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body.String())
	})
}
