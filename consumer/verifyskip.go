package consumer

// Which commits are verified. A commit of a known user is verified —
// every block's hash, the signature, each written record in the MST, the
// MST inverted back to prevData (consumer/wire) — only when it carries a
// mood op, or when the frame has no `since` (then only its verified MST
// root can place it in the chain). Every other commit changes nothing
// moodsync keeps: its blocks are never read, and its chain is followed by
// rev and since.
//
// What a forged frame could do, then: a commit without a mood op is never
// verified, so a forged one is taken as the repo's new place in the chain.
// It can make the user's next real commit look like a broken chain (a
// whole-user reconcile from the repo over XRPC, as an unverifiable commit
// already causes), and it clears the MST root the next commit's prevData
// is held to. It cannot apply a mood op: the ops applied are exactly the
// mood ops of the commit, and a commit with any is verified first. It
// cannot make a real mood commit pass for a replay: only the rev of a
// verified commit (chainLink.trusted) marks one, and a mood commit at or
// behind a rev that only unverified commits named counts as a broken
// chain. What a forged frame can always do, verified or not — drop or hold
// back frames, renumber seqs (so the deletes' fast path, replaymark.go,
// guards honest replays only) — stays for the periodic pass to find
// (reconcile/antientropy.go).

import (
	"strings"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
)

// moodOpsOf returns the ops of a commit that touch mood records.
func moodOpsOf(evt *comatproto.SyncSubscribeRepos_Commit) []*comatproto.SyncSubscribeRepos_RepoOp {
	var moodOps []*comatproto.SyncSubscribeRepos_RepoOp
	for _, op := range evt.Ops {
		if op != nil && strings.HasPrefix(op.Path, moodPrefix) {
			moodOps = append(moodOps, op)
		}
	}
	return moodOps
}

// mustVerify reports whether a commit must be verified before it is acted
// on: with verification on, one carrying a mood op, or one whose frame has
// no since.
func (c *Consumer) mustVerify(evt *comatproto.SyncSubscribeRepos_Commit, moodOps []*comatproto.SyncSubscribeRepos_RepoOp) bool {
	if c.verifier == nil {
		return false
	}
	if len(moodOps) == 0 && evt.Since != nil {
		c.stats.unverified.Add(1)
		return false
	}
	return true
}
