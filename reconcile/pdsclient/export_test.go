package pdsclient

import (
	"context"
	"errors"
	"io"
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

// countingReader serves n bytes and counts how many were read.
type countingReader struct{ n, read int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	if r.read >= r.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n-r.read)
	r.read += k
	return int(k), nil
}

// TestReadAtMostStopsAfterTheBound: an export over the bound is read no
// further than one byte past it, whatever its size.
func TestReadAtMostStopsAfterTheBound(t *testing.T) {
	big := &countingReader{n: 10 << 20}
	if _, err := readAtMost(big, 1024); !errors.Is(err, errExportTooBig) {
		t.Fatalf("err = %v, want errExportTooBig", err)
	}
	if big.read > 1025 {
		t.Fatalf("read %d bytes of an export bounded at 1024", big.read)
	}
	small := &countingReader{n: 1024}
	if body, err := readAtMost(small, 1024); err != nil || len(body) != 1024 {
		t.Fatalf("an export of exactly the bound: %d bytes, %v", len(body), err)
	}
}
