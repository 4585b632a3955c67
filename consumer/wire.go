package consumer

import "github.com/whistlegraph/moodsync/consumer/wire"

// The consumer's names for what it uses of consumer/wire, the firehose's
// wire format (frames, CAR slices, commit verification).
var (
	errKeyLookup    = wire.ErrKeyLookup    // the DID directory is unreachable: retried
	errDIDGone      = wire.ErrDIDGone      // the directory answers 404/410 for the DID
	errBlockMissing = wire.ErrBlockMissing // a record block the frame does not carry
)

// blockMap is a verified frame's blocks by CID key.
type blockMap = wire.Blocks
