package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// publishCommand sends one intent by hand, as the app would.
type publishCommand struct{ stdout, stderr io.Writer }

const publishUsage = `Usage:

	moodsync publish create    --user SUB --mood ID
	moodsync publish delete    --user SUB --mood ID
	moodsync publish purge     --user SUB [--did DID]
	moodsync publish reconcile --user SUB

With MOODSYNC_NATS_URL empty it publishes to the embedded NATS of a running
moodsync (MOODSYNC_EMBED_NATS_ADDR) or, when none runs, into the embedded
server's files under MOODSYNC_DATA_DIR, where the daemon finds the intent at
its next start.
`

func (c *publishCommand) Run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(c.stdout, publishUsage)
		if len(args) == 0 {
			return exitError{2}
		}
		return nil
	}
	var cfg Config
	var in intent.Intent
	in.Op = args[0]
	fs := flag.NewFlagSet("publish "+in.Op, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	configFlags{fs, &cfg}.natsOnly()
	fs.StringVar(&in.User, "user", "", "Auth0 sub of the user")
	fs.StringVar(&in.MongoID, "mood", "", "ObjectID (hex) of the mood, for create and delete")
	fs.StringVar(&in.DID, "did", "", "DID of the user's repo, for purge after the users row is gone")
	if in.Op == intent.OpReconcile {
		fs.StringVar(&in.Cause, "cause", "", "why, for reconcile: future-cursor when the user's repo lost records (they are written again, never taken as deletes)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := in.Validate(); err != nil {
		return err
	}
	inf, err := openNATSOnly(&cfg, c.stderr)
	if err != nil {
		return err
	}
	defer inf.Close()
	// The streams may not exist yet if the daemon never ran: create them so
	// the intent is kept, not lost.
	if err := publisher.EnsureStreams(ctx, inf.JS); err != nil {
		return err
	}
	if err := intent.Publish(ctx, inf.JS, in); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "published %s\n", in.Subject())
	return nil
}

// natsOnly binds the settings of a command that talks to NATS alone
// (publish, dead): a running daemon's embedded NATS when no URL is set.
func (c configFlags) natsOnly() {
	c.add("nats-url", "embed-nats-addr", "data-dir")
	c.logging()
}

// openNATSOnly connects a command bound by natsOnly. The caller closes it.
func openNATSOnly(cfg *Config, stderr io.Writer) (*infra, error) {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return nil, err
	}
	inf := &infra{}
	if err := inf.openNATS(cfg, log, embedShare); err != nil {
		inf.Close()
		return nil, err
	}
	return inf, nil
}
