package reconcile

import (
	"context"
	"time"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// noteReconcile records a whole-user reconcile that could change something
// on the user's binding, for operators (moodsync status): when it ended,
// its cause, what it found and fixed, and its error. A failure to record
// is logged, never the reconcile's failure.
func (e *Engine) noteReconcile(ctx context.Context, user string, cause Cause, out *Outcome, err error) {
	mark := model.ReconcileMark{At: time.Now().UTC(), Cause: string(cause)}
	if out != nil {
		mark.Cause = string(out.Cause)
		if out.Report != nil {
			mark.Drift = out.Report.Drift()
		}
		mark.Held = len(out.Plan.Held)
		for _, r := range out.Results {
			if r.Err == nil && r.Skipped == "" {
				mark.Fixed++
			}
		}
	}
	if err != nil {
		mark.Error = model.Truncate(err.Error(), model.MaxMarkError)
	}
	// Recorded even when ctx ended (a shutdown cut the reconcile short),
	// but briefly.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if werr := e.Store.NoteReconcile(wctx, user, mark); werr != nil {
		e.Log.Warn("could not record the reconcile", "user", user, "err", werr)
	}
}
