package wire

// Fuzz targets for the CAR slices inside frames. FuzzLeanDecoder
// (frame_test.go) holds the lean frame decoder to indigo's. Without -fuzz
// they run their seed corpus as ordinary tests.

import (
	"testing"

	"github.com/bluesky-social/indigo/atproto/identity"

	"github.com/whistlegraph/moodsync/consumer/wire/wiretest"
)

func FuzzCAR(f *testing.F) {
	for _, fr := range wiretest.SeedFrames(f, identity.NewMockDirectory()) {
		if xev, err := wiretest.DecodeFrame(fr); err == nil && xev.RepoCommit != nil {
			f.Add([]byte(xev.RepoCommit.Blocks))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Fuzz(func(t *testing.T, car []byte) {
		var first []byte
		n := 0
		err := carBlocks(car, func(cb, data []byte) bool {
			if first == nil {
				first = cb
			}
			n++
			return true
		})
		idx, ierr := indexCAR(car)
		if ierr == nil && err != nil {
			t.Fatalf("indexCAR accepted what carBlocks refused: %v", err)
		}
		if ierr == nil && len(idx) > n {
			t.Fatalf("index has %d blocks, the CAR %d", len(idx), n)
		}
	})
}
