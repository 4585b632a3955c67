package pdsclient

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

type writeOp struct {
	Type       string             `json:"$type"`
	Collection string             `json:"collection"`
	Rkey       string             `json:"rkey"`
	Value      *model.RecordValue `json:"value,omitempty"`
}

type applyWritesInput struct {
	Repo   string    `json:"repo"`
	Writes []writeOp `json:"writes"`
}

func (c *Client) timed(method string, fn func() error) error {
	start := time.Now()
	err := fn()
	if c.OnWrite != nil {
		c.OnWrite(method, time.Since(start), err)
	}
	return err
}

// ApplyWrites implements reconcile.PDS.
func (c *Client) ApplyWrites(ctx context.Context, did string, writes []model.Write) error {
	in := applyWritesInput{Repo: did, Writes: make([]writeOp, len(writes))}
	for i, w := range writes {
		if w.Delete {
			in.Writes[i] = writeOp{Type: "com.atproto.repo.applyWrites#delete", Collection: model.Collection, Rkey: w.Rkey}
			continue
		}
		v := w.Value
		in.Writes[i] = writeOp{Type: "com.atproto.repo.applyWrites#create", Collection: model.Collection, Rkey: w.Rkey, Value: &v}
	}
	return c.withSession(ctx, did, func(ctx context.Context, api *atclient.APIClient) error {
		return c.timed("applyWrites", func() error {
			return api.Post(ctx, syntax.NSID("com.atproto.repo.applyWrites"), &in, nil)
		})
	})
}

// CreateRecord implements reconcile.PDS.
func (c *Client) CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error {
	in := map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey, "record": v}
	return c.withSession(ctx, did, func(ctx context.Context, api *atclient.APIClient) error {
		return c.timed("createRecord", func() error {
			return api.Post(ctx, syntax.NSID("com.atproto.repo.createRecord"), in, nil)
		})
	})
}

// DeleteRecord implements reconcile.PDS. With swapCID set, the PDS deletes
// the record only if it is still the one with that CID.
func (c *Client) DeleteRecord(ctx context.Context, did, rkey, swapCID string) error {
	in := map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey}
	if swapCID != "" {
		in["swapRecord"] = swapCID
	}
	return c.withSession(ctx, did, func(ctx context.Context, api *atclient.APIClient) error {
		return c.timed("deleteRecord", func() error {
			return api.Post(ctx, syntax.NSID("com.atproto.repo.deleteRecord"), in, nil)
		})
	})
}

type recordOut struct {
	URI   string          `json:"uri"`
	CID   string          `json:"cid"`
	Value json.RawMessage `json:"value"`
}

func toRecord(r recordOut) model.Record {
	v, invalid := decodeRecord(r.Value)
	return model.Record{Rkey: rkeyOf(r.URI), CID: r.CID, Value: v, Invalid: invalid}
}

// GetRecord implements reconcile.PDS. Reads are public: no session is used.
func (c *Client) GetRecord(ctx context.Context, did, rkey string) (*model.Record, error) {
	var out recordOut
	err := c.Public().Get(ctx, syntax.NSID("com.atproto.repo.getRecord"),
		map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey}, &out)
	if err != nil {
		if apiErrorName(err) == "RecordNotFound" {
			return nil, nil
		}
		return nil, c.classifyRead(ctx, did, err)
	}
	r := toRecord(out)
	return &r, nil
}

// ListRecords implements reconcile.PDS, paging listRecords (100 a page).
func (c *Client) ListRecords(ctx context.Context, did string) ([]model.Record, error) {
	var all []model.Record
	cursor := ""
	for {
		params := map[string]any{"repo": did, "collection": model.Collection, "limit": 100}
		if cursor != "" {
			params["cursor"] = cursor
		}
		var out struct {
			Cursor  string      `json:"cursor"`
			Records []recordOut `json:"records"`
		}
		if err := c.Public().Get(ctx, syntax.NSID("com.atproto.repo.listRecords"), params, &out); err != nil {
			return nil, c.classifyRead(ctx, did, err)
		}
		for _, r := range out.Records {
			all = append(all, toRecord(r))
		}
		if out.Cursor == "" || len(out.Records) == 0 {
			return all, nil
		}
		cursor = out.Cursor
	}
}

// classifyRead classifies a failed public read of did's repo. The reference
// PDS answers reads of a deactivated, taken-down or deleted repo with a
// plain 400 InvalidRequest ("Could not find repo", "Could not locate
// record"), which says neither why nor whether it lasts: the repo's status
// says which.
func (c *Client) classifyRead(ctx context.Context, did string, err error) error {
	var ae *atclient.APIError
	if !errors.As(err, &ae) || ae.Name != "InvalidRequest" ||
		!(strings.HasPrefix(ae.Message, "Could not find repo") || strings.HasPrefix(ae.Message, "Could not locate record")) {
		return classify(did, err)
	}
	st, serr := c.RepoStatus(ctx, did)
	switch {
	case serr != nil:
		return serr
	case !st.Active:
		return model.Inactive(did, st.Status)
	}
	// Active again by now: the read raced a reactivation; try again.
	return &model.TransportError{Err: err}
}

// RepoStatus implements reconcile.PDS (com.atproto.sync.getRepoStatus,
// public). A repo the PDS does not know is reported deleted.
func (c *Client) RepoStatus(ctx context.Context, did string) (model.RepoStatus, error) {
	var out struct {
		Active bool    `json:"active"`
		Status *string `json:"status"`
		Rev    *string `json:"rev"`
	}
	err := c.Public().Get(ctx, syntax.NSID("com.atproto.sync.getRepoStatus"), map[string]any{"did": did}, &out)
	if err != nil {
		err = classify(did, err)
		if st, ok := model.IsInactive(err); ok {
			return model.RepoStatus{Status: st}, nil
		}
		return model.RepoStatus{}, err
	}
	st := model.RepoStatus{Active: out.Active}
	if out.Status != nil {
		st.Status = *out.Status
	}
	if out.Rev != nil {
		st.Rev = *out.Rev
	}
	if !st.Active && st.Status == "" {
		st.Status = "inactive"
	}
	return st, nil
}
