package pdsclient_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestExportOverTheBoundIsReadPageByPage: a repo whose export is larger
// than MaxExportBytes has its mood records listed page by page
// (listRecords, 100 a page, counted at a proxy in front of the real PDS)
// instead of being read whole, and they are the records the export holds.
func TestExportOverTheBoundIsReadPageByPage(t *testing.T) {
	r := newSessionRig(t)
	alice := r.pds.CreateUser(t, r.store)
	ctx := context.Background()
	writer := r.client()
	const n = 250
	var writes []model.Write
	for i := 0; i < n; i++ {
		m := &model.Mood{ID: bson.NewObjectID().Hex(), User: alice.User, Text: strings.Repeat("m", 200), When: when.Add(time.Duration(i) * time.Second)}
		writes = append(writes, model.Write{Rkey: model.Rkey(m, 0), Value: model.NewRecordValue(m)})
	}
	for start := 0; start < n; start += 200 {
		if err := writer.ApplyWrites(ctx, alice.DID, writes[start:min(start+200, n)]); err != nil {
			t.Fatal(err)
		}
	}

	whole, err := r.client().ExportRecords(ctx, alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.proxy.Count("com.atproto.repo.listRecords"); got != 0 || len(whole) != n {
		t.Fatalf("under the bound: %d records, %d listRecords calls; want %d, 0", len(whole), got, n)
	}

	bounded := r.client()
	bounded.MaxExportBytes = 16 << 10 // the export is over 50 KiB
	paged, err := bounded.ExportRecords(ctx, alice.DID)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.proxy.Count("com.atproto.repo.listRecords"); got < (n+99)/100 || got > (n+99)/100+1 {
		t.Errorf("%d listRecords calls for %d records, want a page of 100 at a time", got, n)
	}
	if got := r.proxy.Count("com.atproto.sync.getRepo"); got != 2 {
		t.Errorf("%d getRepo calls, want 2 (one read whole, one given up)", got)
	}
	byRkey := func(a, b model.Record) int { return strings.Compare(a.Rkey, b.Rkey) }
	slices.SortFunc(whole, byRkey)
	slices.SortFunc(paged, byRkey)
	if !slices.Equal(whole, paged) {
		t.Fatalf("paged records differ from the export's: %d vs %d", len(paged), len(whole))
	}
}
