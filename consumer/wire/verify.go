package wire

// Commit verification: what indigo's repo.VerifyCommitMessage and
// VerifyCommitSignature check, done over one scan of the frame's CAR, plus
// a hash check of every block (indigo's CAR reader trusts the CIDs it is
// given, so without it a record's bytes could differ from the record the
// signed MST names).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/bluesky-social/indigo/atproto/syntax"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// ErrKeyLookup marks a failure to resolve a signing key: the directory is
// unreachable, which says nothing about the commit, so it is retried.
var ErrKeyLookup = errors.New("resolve signing key")

// ErrDIDGone marks a DID the directory answers 404 or 410 for: the account
// is gone, which is that account's problem only.
var ErrDIDGone = errors.New("DID not found in the directory")

// Blocks is the blocks of one CAR by CID key; it serves the MST loader.
type Blocks map[string][]byte

func (m Blocks) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, ok := m[c.KeyString()]
	if !ok {
		// The MST loader treats "not found" as a subtree the frame leaves
		// out (a partial tree), which is how commit diffs are shaped.
		return nil, &ipld.ErrNotFound{Cid: c}
	}
	return blocks.NewBlockWithCid(data, c)
}

// indexCAR returns every block of the CAR, each checked against its CID.
func indexCAR(car []byte) (Blocks, error) {
	if err := checkCARHashes(car); err != nil {
		return nil, err
	}
	m := Blocks{}
	err := carBlocks(car, func(cb, data []byte) bool {
		m[string(cb)] = data
		return true
	})
	return m, err
}

// decodeCommit decodes and structurally checks the commit block.
func decodeCommit(raw []byte) (*repo.Commit, error) {
	var c repo.Commit
	if err := c.UnmarshalCBOR(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("decode commit: %w", err)
	}
	if err := c.VerifyStructure(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Verifier checks signatures with keys from a DID directory. Parsed keys
// are kept per DID (parsing a compressed K-256 key costs about a tenth of a
// verification) until the DID's #identity event or a failed check.
type Verifier struct {
	dir identity.Directory

	mu   sync.Mutex
	keys map[string]atcrypto.PublicKey
}

// NewVerifier returns a verifier that resolves signing keys in dir.
func NewVerifier(dir identity.Directory) *Verifier {
	return &Verifier{dir: dir, keys: map[string]atcrypto.PublicKey{}}
}

func (v *Verifier) key(ctx context.Context, did syntax.DID) (atcrypto.PublicKey, error) {
	v.mu.Lock()
	k, ok := v.keys[did.String()]
	v.mu.Unlock()
	if ok {
		return k, nil
	}
	ident, err := v.dir.LookupDID(ctx, did)
	if errors.Is(err, identity.ErrDIDNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrDIDGone, did)
	}
	if err != nil {
		return nil, fmt.Errorf("%w of %s: %v", ErrKeyLookup, did, err)
	}
	k, err = ident.PublicKey()
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.keys[did.String()] = k
	v.mu.Unlock()
	return k, nil
}

// Directory is the DID directory the verifier resolves keys in.
func (v *Verifier) Directory() identity.Directory { return v.dir }

// Forget drops what is known of a DID's key, here and in the directory's
// cache (its document changed, or a signature did not check out).
func (v *Verifier) Forget(ctx context.Context, did syntax.DID) {
	v.mu.Lock()
	delete(v.keys, did.String())
	v.mu.Unlock()
	if p, ok := v.dir.(interface {
		Purge(context.Context, syntax.AtIdentifier) error
	}); ok {
		_ = p.Purge(ctx, did.AtIdentifier())
	}
}

// verifySignature checks the commit's signature against the DID's current
// key. A failure may mean the key was rotated since it was cached, so the
// key is looked up afresh once before giving up.
func (v *Verifier) verifySignature(ctx context.Context, c *repo.Commit) error {
	did, err := syntax.ParseDID(c.DID)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		k, err := v.key(ctx, did)
		if err == nil {
			err = c.VerifySignature(k)
		}
		if err == nil || attempt == 1 || errors.Is(err, ErrKeyLookup) || errors.Is(err, ErrDIDGone) {
			return err
		}
		v.Forget(ctx, did)
	}
}

// VerifyCommit checks a #commit frame and returns its commit: every block's
// hash, the commit's structure, repo and rev, its signature, that each
// created or updated record is the one the MST holds, and that undoing the
// ops on the MST gives prevData (the commit is a true diff of the last one).
func (v *Verifier) VerifyCommit(ctx context.Context, evt *comatproto.SyncSubscribeRepos_Commit) (*repo.Commit, Blocks, error) {
	bm, err := indexCAR(evt.Blocks)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := bm[cid.Cid(evt.Commit).KeyString()]
	if !ok {
		return nil, nil, fmt.Errorf("commit block: %w", ErrBlockMissing)
	}
	commit, err := decodeCommit(raw)
	if err != nil {
		return nil, nil, err
	}
	if commit.DID != evt.Repo || commit.Rev != evt.Rev {
		return nil, nil, fmt.Errorf("commit is %s@%s, frame says %s@%s", commit.DID, commit.Rev, evt.Repo, evt.Rev)
	}
	if err := v.verifySignature(ctx, commit); err != nil {
		return nil, nil, err
	}
	tree, err := mst.LoadTreeFromStore(ctx, bm, commit.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("load MST: %w", err)
	}
	ops := make([]repo.Operation, 0, len(evt.Ops))
	for _, op := range evt.Ops {
		o := toOperation(op)
		if o.Value != nil {
			got, err := tree.Get([]byte(o.Path))
			if err != nil {
				return nil, nil, fmt.Errorf("MST lookup of %s: %w", o.Path, err)
			}
			if got == nil || *got != *o.Value {
				return nil, nil, fmt.Errorf("op %s does not match the MST", o.Path)
			}
		}
		ops = append(ops, o)
	}
	if evt.PrevData == nil {
		// Frames from before sync 1.1 cannot be inverted; the signature
		// still holds.
		return commit, bm, nil
	}
	for i, op := range evt.Ops {
		if err := checkOpShape(op.Action, &ops[i]); err != nil {
			return nil, nil, err
		}
	}
	ops, err = repo.NormalizeOps(ops)
	if err != nil {
		return nil, nil, err
	}
	inverted := tree.Copy()
	for i := range ops {
		if err := repo.InvertOp(&inverted, &ops[i]); err != nil {
			return nil, nil, err
		}
	}
	root, err := inverted.RootCID()
	if err != nil {
		return nil, nil, fmt.Errorf("inverted MST: %w", err)
	}
	if *root != cid.Cid(*evt.PrevData) {
		return nil, nil, errors.New("inverted MST root does not match prevData")
	}
	return commit, bm, nil
}

// toOperation converts a frame op.
func toOperation(op *comatproto.SyncSubscribeRepos_RepoOp) repo.Operation {
	o := repo.Operation{Path: op.Path}
	if op.Cid != nil {
		c := cid.Cid(*op.Cid)
		o.Value = &c
	}
	if op.Prev != nil {
		c := cid.Cid(*op.Prev)
		o.Prev = &c
	}
	return o
}

// checkOpShape checks that an op's CIDs fit its action, as inversion needs.
func checkOpShape(action string, o *repo.Operation) error {
	ok := false
	switch action {
	case "create":
		ok = o.Value != nil && o.Prev == nil
	case "update":
		ok = o.Value != nil && o.Prev != nil
	case "delete":
		ok = o.Value == nil && o.Prev != nil
	}
	if !ok {
		return fmt.Errorf("invalid %q op on %s", action, o.Path)
	}
	return nil
}
