package consumer

import (
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/recordcbor"
)

// decodeRecord decodes the DAG-CBOR body of a mood record with the engine's
// one decoder, so the firehose and repo exports read records alike.
func decodeRecord(raw []byte) (*model.RecordValue, string) {
	return recordcbor.Decode(raw)
}
