package consumer

import (
	"bytes"
	"context"
	"errors"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/bluesky-social/indigo/events"
	"github.com/ipfs/go-cid"

	"github.com/whistlegraph/moodsync/consumer/wire"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// moodPrefix is the start of every mood record's repo path.
const moodPrefix = model.Collection + "/"

// chainLink is where a repo's commit chain stands: the next commit must
// name this rev as `since` and this MST root (when known) as `prevData`.
// trusted is the rev of the last commit verified (or of any commit, when
// verification is off): only it marks a mood commit as a replay
// (verifyskip.go).
type chainLink struct {
	rev     string
	data    cid.Cid
	trusted string
}

// errStreamEnd ends the connection on purpose (an error frame).
var errStreamEnd = errors.New("firehose sent an error frame")

// handle is called for every event, in order (#commit frames of repos
// that are not our users' are dropped before, in commitFrame).
// Returning an error ends the connection without marking the event handled;
// so does ctx ending. Bad input is never an error: it is counted, logged
// and skipped.
func (c *Consumer) handle(ctx context.Context, xev *events.XRPCStreamEvent) error {
	var seq int64
	var err error
	switch {
	case xev.RepoCommit != nil:
		seq, err = xev.RepoCommit.Seq, c.onCommit(ctx, xev.RepoCommit)
	case xev.RepoSync != nil:
		seq, err = xev.RepoSync.Seq, c.onSync(ctx, xev.RepoSync)
	case xev.RepoIdentity != nil:
		seq, err = xev.RepoIdentity.Seq, c.onIdentity(ctx, xev.RepoIdentity)
	case xev.RepoAccount != nil:
		seq, err = xev.RepoAccount.Seq, c.onAccount(ctx, xev.RepoAccount)
	case xev.RepoInfo != nil:
		c.onInfo(xev.RepoInfo)
	case xev.Error != nil:
		return c.onError(xev.Error)
	}
	if err != nil {
		return err
	}
	c.stats.events.Add(1)
	c.markHandled(seq)
	return nil
}

// markHandled advances the cursor past an event handled.
func (c *Consumer) markHandled(seq int64) {
	if seq > 0 {
		c.firstSeq.CompareAndSwap(0, seq)
		c.handled.Store(seq)
	}
}

// account returns the account of did, or ok=false for a DID that is not one
// of our users. A miss may reload the users map (throttled: otherwise the
// miss is noted and the reloader loads it when the interval is up).
func (c *Consumer) account(ctx context.Context, did string) (model.Account, bool, error) {
	if acct, ok := c.accounts.get(did); ok {
		return acct, true, nil
	}
	if !c.accounts.stale(time.Now()) {
		c.noteMiss()
		return model.Account{}, false, nil
	}
	if err := c.reloadAccounts(ctx); err != nil {
		return model.Account{}, false, err
	}
	acct, ok := c.accounts.get(did)
	return acct, ok, nil
}

func (c *Consumer) onCommit(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Commit) error {
	acct, ok, err := c.account(ctx, evt.Repo)
	if err != nil {
		return err
	}
	if !ok {
		c.stats.dropped.Add(1)
		return nil
	}
	c.stats.commits.Add(1)
	c.noteEvent(evt.Repo, model.EventCommit, evt.Seq, time.Now())

	// Filter on the op path first: most commits carry no mood op, and for
	// those no block is read and nothing is verified (verifyskip.go).
	moodOps := moodOpsOf(evt)
	prev, known := c.chains[evt.Repo]
	if known && evt.Rev <= prev.rev && (len(moodOps) == 0 || evt.Rev <= prev.trusted) {
		// At or behind where this repo stands: a replay after a reconnect.
		c.stats.replayed.Add(1)
		return nil
	}
	if evt.TooBig {
		// The frame does not carry the ops: read the repo instead.
		c.stats.tooBig.Add(1)
		delete(c.chains, evt.Repo)
		return c.reconcileUser(ctx, acct, "tooBig commit")
	}

	commit, blocks, err := c.readCommit(ctx, evt, moodOps)
	if err != nil {
		if errors.Is(err, errKeyLookup) {
			return err // the directory is down: retry on reconnect
		}
		if errors.Is(err, errDIDGone) {
			// The directory no longer knows the DID of a user we know:
			// the commit cannot be verified and nobody else waits for it.
			// One reconcile of the user is queued (the repo, read over
			// XRPC, says what is true, or that the account is gone); the
			// repo's further commits are skipped while it is in trouble.
			c.stats.badCommits.Add(1)
			if c.inTrouble(evt.Repo, time.Now()) {
				return nil
			}
			c.log.Warn("DID no longer resolves: reconciling the user instead", "did", evt.Repo, "seq", evt.Seq)
			return c.handOff(ctx, acct, "DID no longer resolves", nil)
		}
		// A commit we cannot read or trust is not acted on; the repo
		// itself, read over XRPC, says what is true.
		c.stats.badCommits.Add(1)
		c.log.Warn("commit failed verification; reconciling the user instead", "did", evt.Repo, "seq", evt.Seq, "rev", evt.Rev, "err", err)
		delete(c.chains, evt.Repo)
		return c.reconcileUser(ctx, acct, "unverifiable commit")
	}
	if known && !follows(prev, evt) {
		c.stats.chainBreaks.Add(1)
		c.log.Warn("commit chain broken; reconciling the user", "did", evt.Repo, "seq", evt.Seq, "rev", evt.Rev, "lastRev", prev.rev)
		if err := c.reconcileUser(ctx, acct, "broken chain"); err != nil {
			return err
		}
		c.chains[evt.Repo] = c.link(prev, evt, commit)
		return nil
	}

	// A repo in trouble (trouble.go): its mood ops are not tried, the
	// user's queued reconcile answers them.
	if len(moodOps) > 0 && c.inTrouble(evt.Repo, time.Now()) {
		c.stats.moodOps.Add(int64(len(moodOps)))
		return c.handOff(ctx, acct, "mood ops of a repo in trouble", nil)
	}
	// A commit that follows the repo's last one, past every seq an
	// earlier run can have handled, is no replay: its deletes are taken as
	// they are, without reading the record again (replaymark.go).
	opts := c.opts
	if known && hasDelete(moodOps) && c.fastPath(ctx, evt.Seq) {
		opts = append(opts[:len(opts):len(opts)], reconcile.InOrder())
	}
	for i, op := range moodOps {
		settled, busy, err := c.applyOp(ctx, acct, op, blocks, evt.Blocks, opts)
		if err != nil {
			return err
		}
		if !settled {
			// The rest of the commit's ops are the reconcile's too.
			c.stats.moodOps.Add(int64(len(moodOps) - i - 1))
			return c.handOff(ctx, acct, "a mood op keeps failing", busy)
		}
	}
	c.chains[evt.Repo] = c.link(prev, evt, commit)
	return nil
}

// hasDelete reports whether any of the ops is a delete.
func hasDelete(ops []*comatproto.SyncSubscribeRepos_RepoOp) bool {
	for _, op := range ops {
		if op.Action == "delete" {
			return true
		}
	}
	return false
}

// link is where the chain stands after a commit; the MST root is known
// only from a verified commit.
func (c *Consumer) link(prev chainLink, evt *comatproto.SyncSubscribeRepos_Commit, commit *repo.Commit) chainLink {
	l := chainLink{rev: evt.Rev, trusted: prev.trusted}
	if commit != nil {
		l.data = commit.Data
	}
	if commit != nil || c.verifier == nil {
		l.trusted = evt.Rev
	}
	return l
}

// follows reports whether the commit continues the chain at prev. A
// commit at or behind prev's rev (past the trusted one: not a replay)
// does not.
func follows(prev chainLink, evt *comatproto.SyncSubscribeRepos_Commit) bool {
	if evt.Rev <= prev.rev {
		return false
	}
	if evt.Since != nil && *evt.Since != prev.rev {
		return false
	}
	if evt.PrevData != nil && prev.data.Defined() && cid.Cid(*evt.PrevData) != prev.data {
		return false
	}
	return true
}

// readCommit returns the frame's verified commit, or nil when verification
// is off or the commit needs none (mustVerify): then no block but the
// records of mood ops is read at all, and the chain is followed by rev
// and since alone, since an unverified MST root proves nothing. blocks is
// the frame's checked block index when verified.
func (c *Consumer) readCommit(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Commit, moodOps []*comatproto.SyncSubscribeRepos_RepoOp) (*repo.Commit, blockMap, error) {
	if !c.mustVerify(evt, moodOps) {
		return nil, nil, nil
	}
	return c.verifier.VerifyCommit(ctx, evt)
}

// applyOp hands one mood op to the engine, for at most OpBound
// (trouble.go): settled is false when the op is not applied by then, and
// busy, when not nil, is closed once a call still running returns.
func (c *Consumer) applyOp(ctx context.Context, acct model.Account, op *comatproto.SyncSubscribeRepos_RepoOp, blocks blockMap, car []byte, opts []reconcile.Option) (settled bool, busy chan struct{}, err error) {
	c.stats.moodOps.Add(1)
	rkey := op.Path[len(moodPrefix):]
	var v reconcile.Class
	var call func(context.Context) error
	switch op.Action {
	case "create", "update":
		upsert := reconcile.Upsert{Rkey: rkey}
		upsert.Value, upsert.Invalid = c.recordOf(op, blocks, car)
		call = func(ctx context.Context) (err error) {
			v, err = c.engine.ApplyUpsert(ctx, acct, upsert, opts...)
			return err
		}
	case "delete":
		call = func(ctx context.Context) (err error) {
			v, err = c.engine.ApplyDelete(ctx, acct, rkey, opts...)
			return err
		}
	default:
		c.stats.verdict(reconcile.ClassInvalid, 1)
		c.log.Warn("mood op with unknown action skipped", "did", acct.DID, "action", op.Action, "path", op.Path)
		return true, nil, nil
	}
	if _, err := syntax.ParseRecordKey(rkey); err != nil {
		c.stats.verdict(reconcile.ClassInvalid, 1)
		c.log.Warn("mood op with a bad record key skipped", "did", acct.DID, "path", op.Path)
		return true, nil, nil
	}
	settled, busy, err = c.applyBounded(ctx, acct, "apply "+op.Action+" "+model.URI(acct.DID, rkey), call)
	if settled && err == nil {
		c.stats.verdict(v, 1)
	}
	return settled, busy, err
}

// recordOf decodes the record an op wrote, or says why it cannot.
func (c *Consumer) recordOf(op *comatproto.SyncSubscribeRepos_RepoOp, blocks blockMap, car []byte) (*model.RecordValue, string) {
	if op.Cid == nil {
		return nil, "op names no record"
	}
	rc := cid.Cid(*op.Cid)
	var raw []byte
	var err error
	if blocks != nil {
		var ok bool
		if raw, ok = blocks[rc.KeyString()]; !ok {
			err = errBlockMissing
		}
	} else {
		raw, err = wire.Block(car, rc)
	}
	if err != nil {
		c.stats.undecodable.Add(1)
		return nil, "record block: " + err.Error()
	}
	return decodeRecord(raw)
}

func (c *Consumer) onSync(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Sync) error {
	acct, ok, err := c.account(ctx, evt.Did)
	if err != nil {
		return err
	}
	if !ok {
		c.stats.dropped.Add(1)
		return nil
	}
	c.stats.syncs.Add(1)
	var commit *repo.Commit
	if c.verifier != nil {
		commit, err = repo.VerifySyncMessage(ctx, c.verifier.Directory(), evt)
	} else {
		commit, _, err = repo.LoadCommitFromCAR(ctx, bytes.NewReader(evt.Blocks))
	}
	if err != nil {
		// An unverifiable #sync carries no trusted state, but the repo
		// read over XRPC does.
		c.stats.badCommits.Add(1)
		c.log.Warn("#sync failed verification", "did", evt.Did, "seq", evt.Seq, "err", err)
		delete(c.chains, evt.Did)
	}
	if err := c.reconcileUser(ctx, acct, "#sync"); err != nil {
		return err
	}
	if commit != nil && commit.DID == evt.Did {
		c.chains[evt.Did] = chainLink{rev: commit.Rev, data: commit.Data, trusted: commit.Rev}
	}
	return nil
}

func (c *Consumer) onIdentity(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Identity) error {
	if c.verifier != nil {
		if did, err := syntax.ParseDID(evt.Did); err == nil {
			c.verifier.Forget(ctx, did)
		}
	}
	return c.refreshAccount(ctx, evt.Did)
}

// onAccount records the account status the PDS reports. The engine finds
// the users bound to the DID (so a deleted account's moods lose their rkeys
// even after the app changed the users row); a user whose account is
// active again is queued for a reconcile, which writes what was parked.
func (c *Consumer) onAccount(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Account) error {
	if err := c.refreshAccount(ctx, evt.Did); err != nil {
		return err
	}
	status := model.StatusActive
	if !evt.Active {
		status = "inactive"
		if evt.Status != nil && *evt.Status != "" {
			status = *evt.Status
		}
	}
	if _, ours := c.accounts.get(evt.Did); !ours && status != model.StatusDeleted {
		// Not one of our users' DIDs (a relay carries the whole network):
		// nothing to record. A deletion is looked up all the same: the
		// binding may name a user whose row no longer does.
		c.stats.dropped.Add(1)
		return nil
	}
	if status == model.StatusDeleted {
		c.stats.accountsDeleted.Add(1)
		delete(c.chains, evt.Did)
	}
	var reactivated []string
	err := c.retry(ctx, "record status "+status+" of "+evt.Did, func() error {
		var err error
		reactivated, err = c.engine.AccountStatus(ctx, evt.Did, status)
		return err
	})
	if err != nil {
		return err
	}
	if _, ours := c.accounts.get(evt.Did); ours {
		c.noteEvent(evt.Did, model.EventAccount, evt.Seq, time.Now())
	}
	for _, user := range reactivated {
		c.log.Info("account active again: queueing a reconcile", "user", user, "did", evt.Did)
		err := c.retry(ctx, "queue a reconcile of "+user, func() error {
			return c.queue.Enqueue(ctx, user, reconcile.CauseReactivated)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// refreshAccount looks one DID up again (its row may be new, or gone). A
// user that becomes known this way is reconciled in full.
func (c *Consumer) refreshAccount(ctx context.Context, did string) error {
	var acct *model.Account
	var added bool
	err := c.retry(ctx, "look up "+did, func() error {
		var err error
		acct, added, err = c.accounts.lookup(ctx, did)
		return err
	})
	if err != nil || acct == nil || !added {
		return err
	}
	return c.reconcileUser(ctx, *acct, "new user")
}

func (c *Consumer) onInfo(evt *comatproto.SyncSubscribeRepos_Info) {
	msg := ""
	if evt.Message != nil {
		msg = *evt.Message
	}
	if evt.Name == "OutdatedCursor" {
		// Events between our cursor and the oldest the server still has
		// are lost: queue everyone, and store no cursor until they are.
		c.log.Warn("firehose cursor outdated: queueing a reconcile of every user", "message", msg)
		c.oweSweep(reconcile.CauseOutdatedCursor, false)
		return
	}
	c.log.Info("firehose info", "name", evt.Name, "message", msg)
}

func (c *Consumer) onError(evt *events.ErrorFrame) error {
	c.log.Warn("firehose error frame", "error", evt.Error, "message", evt.Message)
	if evt.Error == "FutureCursor" {
		c.resetCursor.Store(true)
	}
	return errStreamEnd
}
