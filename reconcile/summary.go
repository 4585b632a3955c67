package reconcile

// Summary is one user's compare and plan as operators read them: `moodsync
// audit` (a block, or an entry of --json, per user) and `moodsync status`
// (its drift section) print this one shape.
type Summary struct {
	Mongo    MongoCounts   `json:"mongo"`
	ATProto  ATProtoCounts `json:"atproto"`
	Drift    int           `json:"drift"`
	Notices  int           `json:"notices"`
	Findings []Finding     `json:"findings"`
	// Plan is what a reconcile of the user would do; Held the soft deletes
	// the mass-delete guard would keep back.
	Plan []Fix `json:"plan"`
	Held int   `json:"held,omitempty"`
}

// Summarize is the summary of a report and its plan.
func Summarize(r *Report, p Plan) *Summary {
	return &Summary{
		Mongo: r.Mongo, ATProto: r.ATProto,
		Drift: r.Drift(), Notices: len(r.Findings) - r.Drift(),
		Findings: r.Findings,
		Plan:     append([]Fix{}, p.Fixes...), Held: len(p.Held),
	}
}
