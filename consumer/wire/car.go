package wire

// A lean reader of the CAR slices carried in #commit and #sync frames. The
// consumer needs at most a handful of blocks of each frame (the commit, and
// the records of mood ops), so it finds them by scanning the section
// headers in place instead of building a block store: no allocation per
// block, and nothing is parsed for frames that carry no mood op.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

var (
	errBadCAR       = errors.New("malformed CAR")
	ErrBlockMissing = errors.New("block not in CAR")
	errBadHash      = errors.New("block does not match its CID")
)

// carBlocks iterates over the sections of a CAR v1 slice: the CID bytes and
// the block bytes of each. fn returning false stops the scan.
func carBlocks(car []byte, fn func(cidBytes, data []byte) bool) error {
	hlen, n := binary.Uvarint(car)
	if n <= 0 || hlen > uint64(len(car)-n) {
		return errBadCAR
	}
	rest := car[n+int(hlen):]
	for len(rest) > 0 {
		slen, n := binary.Uvarint(rest)
		if n <= 0 || slen > uint64(len(rest)-n) {
			return errBadCAR
		}
		section := rest[n : n+int(slen)]
		rest = rest[n+int(slen):]
		clen, err := cidLen(section)
		if err != nil {
			return err
		}
		if !fn(section[:clen], section[clen:]) {
			return nil
		}
	}
	return nil
}

// cidLen is the length of the binary CID at the start of b.
func cidLen(b []byte) (int, error) {
	if len(b) >= 2 && b[0] == 0x12 && b[1] == 0x20 { // CIDv0: a bare sha2-256 multihash
		if len(b) < 34 {
			return 0, errBadCAR
		}
		return 34, nil
	}
	off := 0
	var mhLen uint64
	for i := 0; i < 4; i++ { // version, codec, multihash code, digest length
		v, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, errBadCAR
		}
		off += n
		mhLen = v
	}
	if mhLen > uint64(len(b)-off) {
		return 0, errBadCAR
	}
	return off + int(mhLen), nil
}

// Block returns the block of c in the CAR slice.
func Block(car []byte, c cid.Cid) ([]byte, error) {
	want := c.KeyString()
	var found []byte
	err := carBlocks(car, func(cb, data []byte) bool {
		if string(cb) == want {
			found = data
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, ErrBlockMissing
	}
	return found, nil
}

// checkCARHashes verifies that every block of the CAR hashes to its CID, so
// that what a verified commit signs (the MST root, and through it the
// records) is what the blocks say. Only sha2-256, the one hash atproto
// repos use, is accepted.
func checkCARHashes(car []byte) error {
	var bad error
	err := carBlocks(car, func(cb, data []byte) bool {
		_, c, err := cid.CidFromBytes(cb)
		if err != nil {
			bad = fmt.Errorf("%w: %v", errBadCAR, err)
			return false
		}
		prefix := c.Prefix()
		if prefix.MhType != multihash.SHA2_256 {
			bad = fmt.Errorf("%w: hash %#x", errBadHash, prefix.MhType)
			return false
		}
		sum := sha256.Sum256(data)
		if !bytes.HasSuffix(cb, sum[:]) {
			bad = errBadHash
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	return bad
}
