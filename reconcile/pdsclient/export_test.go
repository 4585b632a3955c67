package pdsclient

import (
	"context"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// FuzzRecordsFromCAR: whatever the bytes, a repo export is parsed or
// refused with a permanent error; it never panics.
func FuzzRecordsFromCAR(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("not a CAR"))
	f.Add([]byte{0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x01}) // header only, no roots
	f.Fuzz(func(t *testing.T, car []byte) {
		recs, err := RecordsFromCAR(context.Background(), car)
		if err != nil && !model.IsPermanent(err) && recs != nil {
			t.Fatalf("error %v with records", err)
		}
	})
}
