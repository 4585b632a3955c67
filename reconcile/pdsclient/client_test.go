package pdsclient

import (
	"context"
	"strconv"
	"sync/atomic"
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
	if n := c.clients.Len(); n != 0 {
		t.Fatalf("%d clients kept for DIDs without a session", n)
	}
}

// storedSessions is a SessionStore that has a session for every DID and
// counts loads and password look-ups (logins).
type storedSessions struct {
	host             string
	loads, passwords atomic.Int64
}

func (s *storedSessions) Password(context.Context, string) (string, error) {
	s.passwords.Add(1)
	return "pw", nil
}

func (s *storedSessions) LoadSession(_ context.Context, did string) (*Session, error) {
	s.loads.Add(1)
	return &Session{DID: did, Host: s.host, AccessToken: "a", RefreshToken: "r"}, nil
}
func (s *storedSessions) SaveSession(context.Context, Session) error  { return nil }
func (s *storedSessions) DeleteSession(context.Context, string) error { return nil }

// TestSessionsInMemoryAreBounded: however many accounts the client works
// for, it keeps at most MaxClients sessions in memory; one dropped is
// resumed from the store when needed again, never logged in afresh.
func TestSessionsInMemoryAreBounded(t *testing.T) {
	store := &storedSessions{host: "http://127.0.0.1:1"}
	c := New(store.host, store, nil)
	ctx := context.Background()
	for i := range 2 * MaxClients {
		if _, err := c.session(ctx, "did:plc:user"+strconv.Itoa(i), false); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.clients.Len(); n != MaxClients {
		t.Fatalf("%d sessions in memory after %d accounts, want %d", n, 2*MaxClients, MaxClients)
	}
	loads := store.loads.Load()
	if _, err := c.session(ctx, "did:plc:user0", false); err != nil {
		t.Fatal(err)
	}
	if store.loads.Load() != loads+1 || store.passwords.Load() != 0 {
		t.Fatalf("a dropped session: %d loads, %d logins; want it resumed from the store", store.loads.Load()-loads, store.passwords.Load())
	}
	if _, err := c.session(ctx, "did:plc:user0", false); err != nil || store.loads.Load() != loads+1 {
		t.Fatalf("a session just used was not kept: %v", err)
	}
}
