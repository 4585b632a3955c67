package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// purgeCommand is erase-and-forget-me by hand: the same engine code as the
// purge intent (every mood record of the repo deleted, then the user's
// moods hard-deleted, then the cached session forgotten).
type purgeCommand struct{ stdout, stderr io.Writer }

func (c *purgeCommand) Run(ctx context.Context, args []string) error {
	f := newAEFlags("purge", c.stderr, true)
	var did string
	var yes bool
	f.fs.StringVar(&did, "did", "", "DID of the user's repo, for when the users row is already gone")
	f.fs.BoolVar(&yes, "yes", false, "really erase: without it nothing is done")
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if f.user == "" {
		fmt.Fprintln(c.stderr, "moodsync purge: --user is required")
		return exitError{2}
	}
	if !yes {
		fmt.Fprintf(c.stderr, "moodsync purge: this erases every mood of %s in MongoDB and every mood record of their repo; run again with --yes\n", f.user)
		return exitError{2}
	}
	env, err := f.open(ctx, c.stderr)
	if err != nil {
		return err
	}
	defer env.in.Close()
	if err := env.engine.Purge(ctx, f.user, did, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "purged %s: mood records deleted from the PDS, moods deleted from MongoDB\n", f.user)
	return nil
}
