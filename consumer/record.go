package consumer

import "github.com/whistlegraph/moodsync/reconcile"

// decodeRecord decodes the DAG-CBOR body of a mood record with the engine's
// one decoder, so the firehose and repo exports read records alike.
func decodeRecord(raw []byte) (*reconcile.RecordValue, string) {
	return reconcile.DecodeRecordCBOR(raw)
}
