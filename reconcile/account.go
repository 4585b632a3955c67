package reconcile

// This file is the account gate: who the engine acts for. Every path — an
// intent, a firehose op's account status, a whole-user reconcile, a purge —
// settles the user's account here: the users row, one DID one user, the
// DID binding (rebound when the row names a new DID) and the account
// status.

import (
	"context"
	"fmt"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// subject returns the account the engine acts for, once it is safe to write
// into its repo: the users row exists and names a DID no other row claims,
// the user is bound to that DID (a changed DID is rebound first: rebound
// reports it), and the account is not known to be inactive.
func (e *Engine) subject(ctx context.Context, user string) (acct *model.Account, b *model.Binding, rebound bool, err error) {
	acct, b, err = e.gate(ctx, e.Store, user)
	if err != nil {
		return nil, nil, false, err
	}
	switch {
	case b == nil:
		if _, err := e.Store.Bind(ctx, user, acct.DID, ""); err != nil {
			return nil, nil, false, fmt.Errorf("bind %s to %s: %w", user, acct.DID, err)
		}
	case b.DID != acct.DID:
		if err := e.rebind(ctx, user, b.DID, acct.DID); err != nil {
			return nil, nil, false, err
		}
		rebound = true
	case b.Inactive():
		// Ask the PDS before parking: the event that said the account is
		// back may have been missed.
		st, err := e.PDS.RepoStatus(ctx, acct.DID)
		if err != nil {
			return nil, nil, false, fmt.Errorf("repo status of %s: %w", acct.DID, err)
		}
		if !st.Active {
			return nil, nil, false, model.Inactive(acct.DID, st.Status)
		}
		if err := e.Store.SetStatus(ctx, user, acct.DID, model.StatusActive); err != nil {
			return nil, nil, false, fmt.Errorf("record status of %s: %w", user, err)
		}
	}
	return acct, b, rebound, nil
}

// checkOneUser refuses a DID that more than one users row claims: writing
// one user's moods into another's repo is worse than writing nothing.
func (e *Engine) checkOneUser(ctx context.Context, r Reader, did, user string) error {
	users, err := r.UsersOfDID(ctx, did)
	if err != nil {
		return fmt.Errorf("look up users of %s: %w", did, err)
	}
	for _, u := range users {
		if u != user {
			e.observe("did_conflict", 1)
			return model.Permanent("DID %s is claimed by more than one users row (%s and %s): no writes until the rows are fixed", did, user, u)
		}
	}
	return nil
}

// rebind moves a user whose users row names a new DID: the rkeys of their
// moods belong to the old repo, so they are cleared (the moods are written
// into the new repo next; nothing is soft-deleted, a new repo is empty) and
// the binding is moved. The old repo is left as it is. Clearing comes
// first: a crash in between repeats it, which is harmless.
func (e *Engine) rebind(ctx context.Context, user, oldDID, newDID string) error {
	n, err := e.Store.ClearUserRkeys(ctx, user)
	if err != nil {
		return fmt.Errorf("clear rkeys of %s: %w", user, err)
	}
	if _, err := e.Store.Bind(ctx, user, newDID, oldDID); err != nil {
		return fmt.Errorf("rebind %s to %s: %w", user, newDID, err)
	}
	e.observe("did_rebound", 1)
	e.Log.Warn("user's DID changed: rkeys cleared, moods are written into the new repo; the old repo is left as it is",
		"user", user, "old_did", oldDID, "new_did", newDID, "moods_cleared", n)
	return nil
}

// noteInactive records an inactive status the PDS reported for a user's
// repo, so their next intents are parked without asking it again.
func (e *Engine) noteInactive(ctx context.Context, user, did string, err error) {
	st, ok := model.IsInactive(err)
	if !ok || st == "inactive" {
		return
	}
	if serr := e.Store.SetStatus(ctx, user, did, st); serr != nil {
		e.Log.Warn("could not record account status", "user", user, "did", did, "status", st, "err", serr)
	}
}

// ownDID is the DID a user is known by: their users row's, else the one
// they are bound to; "" when neither exists.
func (e *Engine) ownDID(ctx context.Context, user string) (string, error) {
	acct, err := e.Store.Account(ctx, user)
	if err != nil {
		return "", fmt.Errorf("look up account of %s: %w", user, err)
	}
	if acct != nil && acct.DID != "" {
		return acct.DID, nil
	}
	b, err := e.Store.Binding(ctx, user)
	if err != nil {
		return "", fmt.Errorf("read binding of %s: %w", user, err)
	}
	if b != nil {
		return b.DID, nil
	}
	return "", nil
}

// lookUp reads what moodsync knows of a user's account: the users row's
// account (nil without one) and the DID binding (nil without one).
func lookUp(ctx context.Context, r Reader, user string) (*model.Account, *model.Binding, error) {
	acct, err := r.Account(ctx, user)
	if err != nil {
		return nil, nil, fmt.Errorf("look up account of %s: %w", user, err)
	}
	b, err := r.Binding(ctx, user)
	if err != nil {
		return nil, nil, fmt.Errorf("read binding of %s: %w", user, err)
	}
	return acct, b, nil
}

// gate is the one account check every path that acts for a user passes:
// the users row names a DID, and no other row claims it. It returns the
// account and the user's binding (nil when never bound).
func (e *Engine) gate(ctx context.Context, r Reader, user string) (*model.Account, *model.Binding, error) {
	acct, b, err := lookUp(ctx, r, user)
	if err != nil {
		return nil, nil, err
	}
	if (acct == nil || acct.DID == "") && b != nil && !b.Erased.IsZero() {
		// A user a purge erased, whose row the app has removed since: the
		// binding names the repo that still holds what the purge could not
		// reach (it was inactive), which the tombstone says to delete.
		acct = &model.Account{User: user, DID: b.DID}
	}
	if acct == nil || acct.DID == "" {
		return nil, nil, model.Permanent("user %s has no PDS account", user)
	}
	if err := e.checkOneUser(ctx, r, acct.DID, user); err != nil {
		return nil, nil, err
	}
	return acct, b, nil
}

// AccountStatus records an account status seen on the firehose (#account)
// for the users bound to did — users not bound yet are bound first, unless
// their rows claim the DID twice — and returns the users whose account is
// active again after being inactive: each is owed a whole-user reconcile.
// A deleted account took its records with it: its moods' atproto is unset.
// The binding, not the users row, says whose account it was, so this holds
// even after the app changed or removed the row.
func (e *Engine) AccountStatus(ctx context.Context, did, status string) (reactivated []string, err error) {
	bindings, err := e.Store.BindingsOfDID(ctx, did)
	if err != nil {
		return nil, fmt.Errorf("read bindings of %s: %w", did, err)
	}
	if len(bindings) == 0 {
		users, err := e.Store.UsersOfDID(ctx, did)
		if err != nil {
			return nil, fmt.Errorf("look up users of %s: %w", did, err)
		}
		if len(users) > 1 {
			e.observe("did_conflict", 1)
			return nil, model.Permanent("DID %s is claimed by more than one users row: status %s not attributed", did, status)
		}
		for _, u := range users {
			if _, err := e.Store.Bind(ctx, u, did, ""); err != nil {
				return nil, fmt.Errorf("bind %s to %s: %w", u, did, err)
			}
			bindings = append(bindings, model.Binding{User: u, DID: did})
		}
	}
	for _, b := range bindings {
		if err := e.accountStatus(ctx, b, status); err != nil {
			return reactivated, err
		}
		if status == model.StatusActive && b.Inactive() {
			reactivated = append(reactivated, b.User)
		}
	}
	return reactivated, nil
}

func (e *Engine) accountStatus(ctx context.Context, b model.Binding, status string) error {
	defer e.lockUser(b.User)()
	if err := e.Store.SetStatus(ctx, b.User, b.DID, status); err != nil {
		return fmt.Errorf("record status of %s: %w", b.User, err)
	}
	if status != b.Status {
		e.observe("account_"+status, 1)
		e.Log.Info("account status changed", "user", b.User, "did", b.DID, "status", status, "was", b.Status)
	}
	if status != model.StatusDeleted {
		return nil
	}
	n, err := e.Store.ClearUserRkeys(ctx, b.User)
	if err != nil {
		return fmt.Errorf("unset atproto of %s: %w", b.User, err)
	}
	e.observe("account_deleted_cleared", int(n))
	e.Log.Info("account deleted on the PDS: unset atproto of its moods", "user", b.User, "did", b.DID, "moods", n)
	return nil
}
