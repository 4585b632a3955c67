package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"

	"github.com/whistlegraph/moodsync/deploy/embedded"
)

type versionCommand struct{ stdout io.Writer }

func (c *versionCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	build := "production"
	if embedded.Available {
		build = "with embedded servers"
	}
	fmt.Fprintf(c.stdout, "moodsync %s (%s, %s)\n", Version, runtime.Version(), build)
	return nil
}
