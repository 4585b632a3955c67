package pdsclient

import (
	"context"
	"encoding/json"
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
	return c.withSession(ctx, did, func(api *atclient.APIClient) error {
		return c.timed("applyWrites", func() error {
			return api.Post(ctx, syntax.NSID("com.atproto.repo.applyWrites"), &in, nil)
		})
	})
}

// CreateRecord implements reconcile.PDS.
func (c *Client) CreateRecord(ctx context.Context, did, rkey string, v model.RecordValue) error {
	in := map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey, "record": v}
	return c.withSession(ctx, did, func(api *atclient.APIClient) error {
		return c.timed("createRecord", func() error {
			return api.Post(ctx, syntax.NSID("com.atproto.repo.createRecord"), in, nil)
		})
	})
}

// DeleteRecord implements reconcile.PDS.
func (c *Client) DeleteRecord(ctx context.Context, did, rkey string) error {
	in := map[string]any{"repo": did, "collection": model.Collection, "rkey": rkey}
	return c.withSession(ctx, did, func(api *atclient.APIClient) error {
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
		return nil, classify(err)
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
			return nil, classify(err)
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
