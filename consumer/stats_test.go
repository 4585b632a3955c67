package consumer

import (
	"reflect"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile"
)

// positions are the Stats fields that say where the follower is, not how
// much it did: Add keeps the receiver's.
var positions = map[string]bool{"FirstSeq": true, "Cursor": true, "SavedCursor": true}

// TestStatsAddCoversEveryCounter fails when a counter is added to Stats
// and not to Add (the metrics would silently lose it across terms).
func TestStatsAddCoversEveryCounter(t *testing.T) {
	var one Stats
	rv := reflect.ValueOf(&one).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.Int64 {
			f.SetInt(1)
		}
	}
	one.Verdicts = map[reconcile.Class]int64{reconcile.ClassOrphan: 1}
	sum := one.Add(one)
	sv := reflect.ValueOf(sum)
	for i := range sv.NumField() {
		name, f := sv.Type().Field(i).Name, sv.Field(i)
		if f.Kind() != reflect.Int64 {
			continue
		}
		want := int64(2)
		if positions[name] {
			want = 1
		}
		if f.Int() != want {
			t.Errorf("Add: %s = %d, want %d", name, f.Int(), want)
		}
	}
	if sum.Verdicts[reconcile.ClassOrphan] != 2 {
		t.Errorf("Add: verdicts %v, want orphan 2", sum.Verdicts)
	}
}
