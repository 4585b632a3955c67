package pdsclient

import (
	"context"
	"strconv"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// noSessions is a SessionStore that knows no DID.
type noSessions struct{}

func (noSessions) Password(context.Context, string) (string, error)      { return "", nil }
func (noSessions) LoadSession(context.Context, string) (*Session, error) { return nil, nil }
func (noSessions) SaveSession(context.Context, Session) error            { return nil }
func (noSessions) DeleteSession(context.Context, string) error           { return nil }

// TestStrangersLeaveNoClientBehind: writes for DIDs that have no session
// (a purge intent can name any repo) fail for good and are not remembered.
func TestStrangersLeaveNoClientBehind(t *testing.T) {
	c := New("http://127.0.0.1:1", noSessions{}, nil)
	for i := range 100 {
		err := c.DeleteRecord(context.Background(), "did:plc:stranger"+strconv.Itoa(i), "3kaaaaaaaaa01", "")
		if !model.IsPermanent(err) {
			t.Fatalf("err = %v, want permanent", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.clients); n != 0 {
		t.Fatalf("%d clients kept for DIDs without a session", n)
	}
}
