package pdsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/recordcbor"
)

// moodPrefix is the start of every mood record's path in a repo.
const moodPrefix = model.Collection + "/"

// DefaultMaxExportBytes is the largest repo export read whole when
// MaxExportBytes is not set (64 MiB).
const DefaultMaxExportBytes = 64 << 20

// errExportTooBig says a repo export is over the client's bound.
var errExportTooBig = errors.New("repo export over the bound")

// ExportRecords implements reconcile.PDS: it exports the whole repo in one
// call (com.atproto.sync.getRepo, public, so no session is used), walks its
// MST and decodes every mood record. A record that cannot be decoded is
// returned with Invalid set, never dropped, so a compare counts it.
//
// An export carries every collection of the repo, not only moods: one
// larger than MaxExportBytes (known from its Content-Length, or found
// while reading, which stops there) is not buffered; the repo's mood
// records are listed page by page instead (listRecords, public).
func (c *Client) ExportRecords(ctx context.Context, did string) ([]model.Record, error) {
	car, err := c.getRepo(ctx, did)
	if errors.Is(err, errExportTooBig) {
		c.log.Info("repo export over the bound: listing its mood records page by page instead",
			"did", did, "max_export_bytes", c.maxExportBytes())
		return c.ListRecords(ctx, did)
	}
	if err != nil {
		return nil, err
	}
	return RecordsFromCAR(ctx, car)
}

func (c *Client) maxExportBytes() int64 {
	if c.MaxExportBytes > 0 {
		return c.MaxExportBytes
	}
	return DefaultMaxExportBytes
}

// maxErrorBody bounds the body of a refused export read for its error.
const maxErrorBody = 64 << 10

// getRepo downloads the repo export of did as CAR bytes, at most
// MaxExportBytes of them (errExportTooBig beyond).
func (c *Client) getRepo(ctx context.Context, did string) ([]byte, error) {
	req := atclient.NewAPIRequest(http.MethodGet, syntax.NSID("com.atproto.sync.getRepo"), nil)
	req.QueryParams.Set("did", did)
	req.Headers.Set("Accept", "application/vnd.ipld.car")
	resp, err := c.Public().Do(ctx, req)
	if err != nil {
		return nil, classify(did, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, err := readAtMost(resp.Body, maxErrorBody)
		var eb atclient.ErrorBody
		if err != nil || json.Unmarshal(body, &eb) != nil {
			return nil, classify(did, &atclient.APIError{StatusCode: resp.StatusCode})
		}
		return nil, classify(did, eb.APIError(resp.StatusCode))
	}
	if resp.ContentLength > c.maxExportBytes() {
		return nil, errExportTooBig
	}
	body, err := readAtMost(resp.Body, c.maxExportBytes())
	if err != nil && !errors.Is(err, errExportTooBig) {
		return nil, classify(did, err)
	}
	return body, err
}

// readAtMost reads r to its end if it holds at most n bytes; otherwise it
// stops after n+1 and returns errExportTooBig.
func readAtMost(r io.Reader, n int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > n {
		return nil, errExportTooBig
	}
	return body, nil
}

// RecordsFromCAR reads the mood records of a repo export. A malformed
// export is an error, never a panic: one bad repo must not stop an audit.
func RecordsFromCAR(ctx context.Context, car []byte) (recs []model.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			recs, err = nil, model.Permanent("repo export unreadable (parser panicked: %v)", p)
		}
	}()
	_, r, err := repo.LoadRepoFromCAR(ctx, bytes.NewReader(car))
	if err != nil {
		return nil, model.Permanent("repo export unreadable: %v", err)
	}
	var out []model.Record
	err = r.MST.Walk(func(key []byte, val cid.Cid) error {
		rkey, ok := strings.CutPrefix(string(key), moodPrefix)
		if !ok {
			return nil
		}
		rec := model.Record{Rkey: rkey, CID: val.String()}
		blk, err := r.RecordStore.Get(ctx, val)
		if err != nil {
			rec.Invalid = "record block missing from the repo export"
		} else if v, why := recordcbor.Decode(blk.RawData()); v != nil {
			rec.Value = *v
		} else {
			rec.Invalid = why
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk repo export: %w", err)
	}
	return out, nil
}
