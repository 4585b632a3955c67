package pdsclient

import (
	"context"
	"strconv"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/reconcile"
)

// ListRepos reads one page of com.atproto.sync.listRepos (public): each
// repo's DID, rev and whether it is active; next is "" after the last page.
func (c *Client) ListRepos(ctx context.Context, cursor string, limit int) ([]reconcile.ListedRepo, string, error) {
	var out struct {
		Cursor *string `json:"cursor"`
		Repos  []struct {
			DID    string `json:"did"`
			Rev    string `json:"rev"`
			Active *bool  `json:"active"`
		} `json:"repos"`
	}
	params := map[string]any{"limit": strconv.Itoa(limit)}
	if cursor != "" {
		params["cursor"] = cursor
	}
	if err := c.Public().Get(ctx, syntax.NSID("com.atproto.sync.listRepos"), params, &out); err != nil {
		return nil, "", classify("", err)
	}
	repos := make([]reconcile.ListedRepo, 0, len(out.Repos))
	for _, r := range out.Repos {
		repos = append(repos, reconcile.ListedRepo{DID: r.DID, Rev: r.Rev, Active: r.Active == nil || *r.Active})
	}
	next := ""
	if out.Cursor != nil {
		next = *out.Cursor
	}
	return repos, next, nil
}
