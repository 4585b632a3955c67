// Package wire reads the firehose's wire format: frames (a lean, in-place
// decoder of the header and of #commit bodies), the CAR slices inside them,
// and commit verification (signature, block hashes, MST inversion). The
// consumer follows and handles; this package only reads and checks bytes.
// Its API is small on purpose, so that going back to indigo's decoder stays
// a small change: DecodeHeader, CommitView (Decode, Event), Block, and
// Verifier (VerifyCommit, Forget, Directory).
package wire

// A lean decoder of firehose frames. A frame is two DAG-CBOR values back
// to back: a header {op, t} and the event body. For #commit, by far the
// most common event, CommitView.Decode reads the body in place: the strings,
// the CIDs and the CAR slice stay sub-slices of the frame, nothing is
// allocated, and the ops are only walked over. The consumer looks the repo
// up first; only a commit of one of the app's users is turned into
// indigo's SyncSubscribeRepos_Commit (CommitView.Event), which checks the CIDs
// and decodes the ops. The rarer events are decoded by indigo's cbor-gen
// types, which stay the reference: FuzzLeanDecoder feeds the same frames
// to both and compares what they extract.
//
// What is accepted follows indigo's generated decoders (canonical
// argument encodings, the same bounds, unknown fields skipped, null where
// a field is optional), with two differences: a map with a key twice is
// refused (DAG-CBOR forbids it; cbor-gen keeps the last, and for "blocks"
// reads the wrong number of bytes), and the CIDs and ops of a commit that
// is not one of our users' are not checked (indigo refuses the whole
// stream for a malformed one, and a reconnect meets it again).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"
)

// CBOR major types.
const (
	majUint   = 0
	majNegInt = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	majMap    = 5
	majTag    = 6
	majOther  = 7
)

// Bounds of indigo's generated decoders (cbor-gen).
const (
	maxMapLen    = 8192
	maxArrayLen  = 8192
	maxStringLen = 1_000_000
	maxBlocksLen = 2 << 20
	maxLinkLen   = 512 // a CID link
)

var (
	errShort        = errors.New("cbor: unexpected end of frame")
	errNotCanonical = errors.New("cbor: argument not encoded in its shortest form")
	errBadHeader    = errors.New("cbor: invalid header byte")
	errDuplicateKey = errors.New("cbor: a key occurs twice in one map")
)

// cborReader reads DAG-CBOR from a byte slice. It never allocates: what it
// returns is a sub-slice of b.
type cborReader struct {
	b   []byte
	off int
}

// header reads the initial byte and argument of a data item, refusing
// what cbor-gen refuses: indefinite lengths, reserved values and
// arguments not in their shortest form.
func (r *cborReader) header() (maj byte, arg uint64, err error) {
	if r.off >= len(r.b) {
		return 0, 0, errShort
	}
	first := r.b[r.off]
	r.off++
	maj, low := first>>5, first&0x1f
	var n int
	var min uint64
	switch {
	case low < 24:
		return maj, uint64(low), nil
	case low == 24:
		n, min = 1, 24
	case low == 25:
		n, min = 2, math.MaxUint8+1
	case low == 26:
		n, min = 4, math.MaxUint16+1
	case low == 27:
		n, min = 8, math.MaxUint32+1
	default:
		return 0, 0, errBadHeader
	}
	if len(r.b)-r.off < n {
		return 0, 0, errShort
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	if arg < min {
		return 0, 0, errNotCanonical
	}
	return maj, arg, nil
}

// take returns the next n bytes.
func (r *cborReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, errShort
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p, nil
}

// null reports (and consumes) a CBOR null.
func (r *cborReader) null() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xf6 {
		r.off++
		return true
	}
	return false
}

// text reads a text string of at most maxStringLen bytes.
func (r *cborReader) text() ([]byte, error) {
	maj, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if maj != majText {
		return nil, fmt.Errorf("cbor: major type %d where a string is expected", maj)
	}
	if n > maxStringLen {
		return nil, errors.New("cbor: string too long")
	}
	return r.take(n)
}

// int64 reads an integer as cbor-gen does for an int64 field.
func (r *cborReader) int64() (int64, error) {
	maj, n, err := r.header()
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64 {
		return 0, errors.New("cbor: int64 overflow")
	}
	switch maj {
	case majUint:
		return int64(n), nil
	case majNegInt:
		return -1 - int64(n), nil
	}
	return 0, fmt.Errorf("cbor: major type %d where an integer is expected", maj)
}

// bool reads a boolean.
func (r *cborReader) bool() (bool, error) {
	maj, n, err := r.header()
	if err != nil {
		return false, err
	}
	if maj != majOther || (n != 20 && n != 21) {
		return false, errors.New("cbor: not a boolean")
	}
	return n == 21, nil
}

// link reads a CID link (tag 42, a byte string of at most maxLinkLen
// starting with the identity multibase 0x00) and returns the CID's bytes,
// unchecked.
func (r *cborReader) link() ([]byte, error) {
	maj, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if maj != majTag || n != 42 {
		return nil, errors.New("cbor: expected a CID link (tag 42)")
	}
	maj, n, err = r.header()
	if err != nil {
		return nil, err
	}
	if maj != majBytes {
		return nil, errors.New("cbor: CID link is not a byte string")
	}
	if n > maxLinkLen {
		return nil, errors.New("cbor: CID link too long")
	}
	p, err := r.take(n)
	if err != nil {
		return nil, err
	}
	if len(p) < 2 || p[0] != 0 {
		return nil, errors.New("cbor: CID link without the identity multibase prefix")
	}
	return p[1:], nil
}

// skip passes over one value of any type, as cbor-gen's ScanForLinks does
// for a field it does not know (CID links are not checked).
func (r *cborReader) skip() error {
	for remaining := uint64(1); remaining > 0; remaining-- {
		maj, n, err := r.header()
		if err != nil {
			return err
		}
		switch maj {
		case majUint, majNegInt, majOther:
		case majBytes, majText:
			if n > math.MaxInt32 {
				return errors.New("cbor: string too long")
			}
			if _, err := r.take(n); err != nil {
				return err
			}
		case majTag:
			if n != 42 {
				remaining++ // the tagged value follows
				continue
			}
			maj, n, err = r.header()
			if err != nil {
				return err
			}
			if maj != majBytes {
				return errors.New("cbor: CID link is not a byte string")
			}
			if n == 0 || n > maxLinkLen {
				return errors.New("cbor: bad CID link length")
			}
			if _, err := r.take(n); err != nil {
				return err
			}
		case majArray, majMap:
			if maj == majMap {
				n *= 2
			}
			if n > uint64(len(r.b)-r.off) { // every item takes a byte at least
				return errShort
			}
			remaining += n
		}
	}
	return nil
}

// mapKeys reads a map header of at most maxMapLen entries and calls field
// for each key of at most keyLen bytes (longer keys are skipped with their
// values, as cbor-gen does). field must consume the value (skip it when
// the key is unknown) and returns which known field it read (from 0, -1
// for none): a known field given twice is refused.
func (r *cborReader) mapKeys(keyLen int, field func(key []byte) (int, error)) error {
	maj, n, err := r.header()
	if err != nil {
		return err
	}
	if maj != majMap {
		return errors.New("cbor: input should be a map")
	}
	if n > maxMapLen {
		return errors.New("cbor: map too large")
	}
	var seen uint32
	for i := uint64(0); i < n; i++ {
		key, err := r.text()
		if err != nil {
			return err
		}
		if len(key) > keyLen {
			if err := r.skip(); err != nil {
				return err
			}
			continue
		}
		known, err := field(key)
		if err != nil {
			return err
		}
		if known >= 0 {
			if seen&(1<<known) != 0 {
				return errDuplicateKey
			}
			seen |= 1 << known
		}
	}
	return nil
}

// Header is the decoded header of a frame.
type Header struct {
	Op      int64  // 1: a message, -1: an error frame
	MsgType []byte // "#commit", "#sync", …; a sub-slice of the frame
}

// DecodeHeader reads a frame's header and returns it with the body.
func DecodeHeader(frame []byte) (Header, []byte, error) {
	r := cborReader{b: frame}
	var h Header
	err := r.mapKeys(2, func(key []byte) (int, error) {
		var err error
		switch string(key) {
		case "t":
			h.MsgType, err = r.text()
			return 0, err
		case "op":
			h.Op, err = r.int64()
			return 1, err
		}
		return -1, r.skip()
	})
	if err != nil {
		return Header{}, nil, fmt.Errorf("reading header: %w", err)
	}
	return h, frame[r.off:], nil
}

// CommitView is a #commit body read in place. Its slices point into the
// frame: it is valid only while the frame is.
type CommitView struct {
	Repo, Rev, Since, Time []byte
	HasSince               bool
	Seq                    int64
	TooBig                 bool
	Commit                 []byte // CID bytes, unchecked
	PrevData               []byte // CID bytes, unchecked; nil when absent or null
	Blocks                 []byte
	Ops                    []byte // the encoded ops array, walked over only
	Blobs                  []byte // the encoded blobs array, walked over only
}

// Decode reads a #commit body.
func (v *CommitView) Decode(body []byte) error {
	*v = CommitView{}
	r := cborReader{b: body}
	return r.mapKeys(8, func(key []byte) (int, error) {
		var err error
		switch string(key) {
		case "ops":
			v.Ops, err = r.array(maxArrayLen)
			return 0, err
		case "rev":
			v.Rev, err = r.text()
			return 1, err
		case "seq":
			v.Seq, err = r.int64()
			return 2, err
		case "repo":
			v.Repo, err = r.text()
			return 3, err
		case "time":
			v.Time, err = r.text()
			return 4, err
		case "blobs":
			v.Blobs, err = r.array(maxArrayLen)
			return 5, err
		case "since":
			if !r.null() {
				v.Since, err = r.text()
				v.HasSince = err == nil
			}
			return 6, err
		case "blocks":
			v.Blocks, err = r.byteString(maxBlocksLen)
			return 7, err
		case "commit":
			v.Commit, err = r.link()
			return 8, err
		case "rebase":
			_, err = r.bool()
			return 9, err
		case "tooBig":
			v.TooBig, err = r.bool()
			return 10, err
		case "prevData":
			if !r.null() {
				v.PrevData, err = r.link()
			}
			return 11, err
		}
		return -1, r.skip()
	})
}

// array passes over an array of at most max items and returns its
// encoding.
func (r *cborReader) array(max uint64) ([]byte, error) {
	start := r.off
	maj, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errors.New("cbor: array too large")
	}
	if maj != majArray {
		return nil, errors.New("cbor: expected an array")
	}
	for i := uint64(0); i < n; i++ {
		if err := r.skip(); err != nil {
			return nil, err
		}
	}
	return r.b[start:r.off], nil
}

// byteString reads a byte string of at most max bytes.
func (r *cborReader) byteString(max uint64) ([]byte, error) {
	maj, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errors.New("cbor: byte string too large")
	}
	if maj != majBytes {
		return nil, errors.New("cbor: expected a byte string")
	}
	return r.take(n)
}

// castLink checks CID bytes as cbor-gen's ReadCid does.
func castLink(b []byte) (lexutil.LexLink, error) {
	c, err := cid.Cast(b)
	if err != nil {
		return lexutil.LexLink{}, err
	}
	return lexutil.LexLink(c), nil
}

// Event turns the view into indigo's type, checking what Decode passed
// over: the CIDs, the ops and the blobs. It allocates; the consumer calls
// it only for commits of its users.
func (v *CommitView) Event() (*comatproto.SyncSubscribeRepos_Commit, error) {
	evt := &comatproto.SyncSubscribeRepos_Commit{
		Repo: string(v.Repo), Rev: string(v.Rev), Seq: v.Seq, Time: string(v.Time), TooBig: v.TooBig,
	}
	if v.HasSince {
		s := string(v.Since)
		evt.Since = &s
	}
	if len(v.Blocks) > 0 {
		evt.Blocks = v.Blocks
	}
	var err error
	if v.Commit != nil { // absent, it stays undefined, as indigo leaves it
		if evt.Commit, err = castLink(v.Commit); err != nil {
			return nil, fmt.Errorf("commit CID: %w", err)
		}
	}
	if v.PrevData != nil {
		l, err := castLink(v.PrevData)
		if err != nil {
			return nil, fmt.Errorf("prevData: %w", err)
		}
		evt.PrevData = &l
	}
	if v.Blobs != nil {
		r := cborReader{b: v.Blobs}
		_, n, _ := r.header()
		if n > 0 {
			evt.Blobs = make([]lexutil.LexLink, n)
		}
		for i := range evt.Blobs {
			b, err := r.link()
			if err == nil {
				evt.Blobs[i], err = castLink(b)
			}
			if err != nil {
				return nil, fmt.Errorf("blob %d: %w", i, err)
			}
		}
	}
	if v.Ops != nil {
		r := cborReader{b: v.Ops}
		_, n, _ := r.header()
		if n > 0 {
			evt.Ops = make([]*comatproto.SyncSubscribeRepos_RepoOp, n)
		}
		for i := range evt.Ops {
			if r.null() {
				continue
			}
			if evt.Ops[i], err = r.repoOp(); err != nil {
				return nil, fmt.Errorf("op %d: %w", i, err)
			}
		}
	}
	return evt, nil
}

// repoOp reads one op of a commit.
func (r *cborReader) repoOp() (*comatproto.SyncSubscribeRepos_RepoOp, error) {
	op := &comatproto.SyncSubscribeRepos_RepoOp{}
	link := func() (*lexutil.LexLink, error) {
		if r.null() {
			return nil, nil
		}
		b, err := r.link()
		if err != nil {
			return nil, err
		}
		l, err := castLink(b)
		return &l, err
	}
	err := r.mapKeys(6, func(key []byte) (int, error) {
		var err error
		var s []byte
		switch string(key) {
		case "cid":
			op.Cid, err = link()
			return 0, err
		case "path":
			s, err = r.text()
			op.Path = string(s)
			return 1, err
		case "prev":
			op.Prev, err = link()
			return 2, err
		case "action":
			s, err = r.text()
			op.Action = string(s)
			return 3, err
		}
		return -1, r.skip()
	})
	return op, err
}
