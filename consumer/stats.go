package consumer

import (
	"sync"
	"sync/atomic"

	"github.com/whistlegraph/moodsync/reconcile"
)

// Stats is a snapshot of the consumer's counters. Verdicts counts every
// verdict reached, on firehose ops and in whole-user reconciles alike.
type Stats struct {
	Events          int64 // frames handled, of every kind
	Dropped         int64 // events of DIDs not in users
	Commits         int64 // commits of our users
	MoodOps         int64 // mood record ops of our users
	Replayed        int64 // commits at or behind the repo's last rev: already handled
	ChainBreaks     int64 // commits whose since/prevData did not follow the last one
	Syncs           int64 // #sync events of our users
	TooBig          int64 // commits flagged tooBig
	BadCommits      int64 // commits that failed verification
	Unverified      int64 // commits of our users not verified: no mood op (verifyskip.go)
	Undecodable     int64 // frames of ours whose blocks could not be read
	AccountsDeleted int64 // #account deleted events of our users
	UserReconciles  int64 // whole-user reconciles queued (gaps)
	HandOffs        int64 // users handed to the reconcile queue: ops that kept failing, repos in trouble
	FullReconciles  int64 // sweeps of every user queued (first start, outdated or future cursor)
	Reconnects      int64
	Errors          int64 // engine failures given up on (permanent)
	FirstSeq        int64 // seq of the first event handled by this run
	Cursor          int64 // seq of the last event handled
	SavedCursor     int64 // seq last stored in moodsync_cursors
	Verdicts        map[reconcile.Class]int64
}

// counters are the live, concurrently updated form of Stats.
type counters struct {
	events, dropped, commits, moodOps, replayed, chainBreaks, syncs, tooBig,
	badCommits, unverified, undecodable, accountsDeleted, userReconciles, handOffs, fullReconciles,
	reconnects, errors atomic.Int64

	mu       sync.Mutex
	verdicts map[reconcile.Class]int64
}

func (c *counters) verdict(v reconcile.Class, n int) {
	if v == "" || n == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.verdicts == nil {
		c.verdicts = map[reconcile.Class]int64{}
	}
	c.verdicts[v] += int64(n)
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Events: c.events.Load(), Dropped: c.dropped.Load(), Commits: c.commits.Load(),
		MoodOps: c.moodOps.Load(), Replayed: c.replayed.Load(), ChainBreaks: c.chainBreaks.Load(),
		Syncs: c.syncs.Load(), TooBig: c.tooBig.Load(), BadCommits: c.badCommits.Load(),
		Unverified:  c.unverified.Load(),
		Undecodable: c.undecodable.Load(), AccountsDeleted: c.accountsDeleted.Load(),
		UserReconciles: c.userReconciles.Load(), HandOffs: c.handOffs.Load(), FullReconciles: c.fullReconciles.Load(),
		Reconnects: c.reconnects.Load(), Errors: c.errors.Load(),
		Verdicts: map[reconcile.Class]int64{},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for v, n := range c.verdicts {
		s.Verdicts[v] = n
	}
	return s
}

// Add returns s with o's counters added (the positions FirstSeq, Cursor
// and SavedCursor are s's): the counters of several terms of following.
func (s Stats) Add(o Stats) Stats {
	s.Events += o.Events
	s.Dropped += o.Dropped
	s.Commits += o.Commits
	s.MoodOps += o.MoodOps
	s.Replayed += o.Replayed
	s.ChainBreaks += o.ChainBreaks
	s.Syncs += o.Syncs
	s.TooBig += o.TooBig
	s.BadCommits += o.BadCommits
	s.Unverified += o.Unverified
	s.Undecodable += o.Undecodable
	s.AccountsDeleted += o.AccountsDeleted
	s.UserReconciles += o.UserReconciles
	s.HandOffs += o.HandOffs
	s.FullReconciles += o.FullReconciles
	s.Reconnects += o.Reconnects
	s.Errors += o.Errors
	v := make(map[reconcile.Class]int64, len(s.Verdicts)+len(o.Verdicts))
	for k, n := range s.Verdicts {
		v[k] += n
	}
	for k, n := range o.Verdicts {
		v[k] += n
	}
	s.Verdicts = v
	return s
}
