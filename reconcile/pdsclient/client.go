// Package pdsclient is the PDS side of the reconcile engine: record reads
// and writes over XRPC (indigo's atclient), authenticated as each repo's own
// user with sessions that are cached in Mongo, refreshed, and reused across
// restarts, so createSession runs once per account, not once per write.
package pdsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atclient"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// SessionStore keeps sessions and hands out the password for a first login
// (mongostore.Store keeps them in moodsync_sessions).
type SessionStore interface {
	Password(ctx context.Context, did string) (string, error)
	LoadSession(ctx context.Context, did string) (*Session, error)
	SaveSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, did string) error
}

// Session is a cached PDS session of one DID. The tokens are secrets: the
// type has no String method and is never logged.
type Session struct {
	DID          string    `bson:"_id"`
	Host         string    `bson:"host"`
	AccessToken  string    `bson:"accessJwt"`
	RefreshToken string    `bson:"refreshJwt"`
	UpdatedAt    time.Time `bson:"updatedAt"`
}

// Client implements reconcile.PDS against one PDS.
type Client struct {
	host     string
	http     *http.Client
	sessions SessionStore
	log      *slog.Logger

	// OnLogin and OnRefresh, when set, are called after each createSession
	// and refreshSession (for metrics and tests).
	OnLogin   func(did string)
	OnRefresh func(did string)
	// OnWrite, when set, is told how long each write call took.
	OnWrite func(method string, d time.Duration, err error)
	// OnRateLimited, when set, is told of every 429 answered for an
	// account (ratelimit.go).
	OnRateLimited func(did string)
	// MaxExportBytes bounds the repo export ExportRecords reads whole
	// (0: DefaultMaxExportBytes); a larger repo is read page by page.
	MaxExportBytes int64

	mu sync.Mutex
	// clients are the sessions in memory, by DID: at most MaxClients, the
	// least recently used dropped first (its session stays in the
	// SessionStore and is resumed from there when next needed: no login).
	clients *lru.Cache[string, *userClient]
	limits  limits
}

// MaxClients bounds the sessions a Client keeps in memory (one small
// authenticated client per DID, tokens included).
const MaxClients = 1024

type userClient struct {
	mu  sync.Mutex // serialises logins of this DID
	api *atclient.APIClient
}

// New returns a client for the PDS at host (scheme://host:port).
func New(host string, sessions SessionStore, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		host:     strings.TrimRight(host, "/"),
		sessions: sessions,
		log:      log,
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: rateTransport{&http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 32,
				IdleConnTimeout:     90 * time.Second,
			}},
		},
		clients: mustLRU(MaxClients),
	}
}

func mustLRU(n int) *lru.Cache[string, *userClient] {
	c, err := lru.New[string, *userClient](n)
	if err != nil {
		panic(err)
	}
	return c
}

// Host is the PDS base URL.
func (c *Client) Host() string { return c.host }

// Public returns an unauthenticated XRPC client for public reads.
func (c *Client) Public() *atclient.APIClient {
	api := atclient.NewAPIClient(c.host)
	api.Client = c.http
	return api
}

func (c *Client) user(did string) *userClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	uc, ok := c.clients.Get(did)
	if !ok {
		uc = &userClient{}
		c.clients.Add(did, uc)
	}
	return uc
}

// dropIfNoSession removes did's entry when it has no session. The caller
// holds uc.mu (lock order: uc.mu, then c.mu).
func (c *Client) dropIfNoSession(did string, uc *userClient) {
	if uc.api != nil {
		return
	}
	c.mu.Lock()
	if cur, ok := c.clients.Peek(did); ok && cur == uc {
		c.clients.Remove(did)
	}
	c.mu.Unlock()
}

// session returns an authenticated client for did: from memory, else the
// cached session in Mongo, else a fresh login with the stored password.
func (c *Client) session(ctx context.Context, did string, fresh bool) (*atclient.APIClient, error) {
	uc := c.user(did)
	uc.mu.Lock()
	defer uc.mu.Unlock()
	// A DID with no session to be had (an intent naming a stranger's
	// repo) leaves nothing behind: the map holds only DIDs with sessions.
	defer c.dropIfNoSession(did, uc)
	if uc.api != nil && !fresh {
		return uc.api, nil
	}
	if !fresh {
		sess, err := c.sessions.LoadSession(ctx, did)
		if err != nil {
			return nil, fmt.Errorf("load session of %s: %w", did, err)
		}
		if sess != nil && sess.Host == c.host {
			uc.api = c.resume(did, sess)
			return uc.api, nil
		}
	}
	password, err := c.sessions.Password(ctx, did)
	if err != nil {
		return nil, fmt.Errorf("look up credentials of %s: %w", did, err)
	}
	if password == "" {
		return nil, model.Permanent("no PDS session or password for %s", did)
	}
	api, err := atclient.LoginWithPasswordHost(ctx, c.host, did, password, "", c.refreshed(did))
	if err != nil {
		err = classify(did, err)
		if model.IsPermanent(err) {
			return nil, err
		}
		if apiErrorStatus(err) == http.StatusUnauthorized {
			// Wrong password or account gone: retrying cannot help until an
			// operator fixes the users row. The error names no secret.
			return nil, model.Permanent("PDS login refused for %s: %v", did, err)
		}
		return nil, fmt.Errorf("PDS login for %s: %w", did, err)
	}
	if c.OnLogin != nil {
		c.OnLogin(did)
	}
	api.Client = c.http
	access, refresh := api.Auth.(*atclient.PasswordAuth).GetTokens()
	if err := c.sessions.SaveSession(ctx, Session{DID: did, Host: c.host, AccessToken: access, RefreshToken: refresh}); err != nil {
		c.log.Warn("could not cache PDS session", "did", did, "err", err)
	}
	c.log.Info("logged in to PDS", "did", did)
	uc.api = api
	return api, nil
}

func (c *Client) resume(did string, s *Session) *atclient.APIClient {
	api := atclient.ResumePasswordSession(atclient.PasswordSessionData{
		AccessToken:  s.AccessToken,
		RefreshToken: s.RefreshToken,
		AccountDID:   syntax.DID(did),
		Host:         c.host,
	}, c.refreshed(did))
	api.Client = c.http
	return api
}

// refreshed persists refreshed tokens, so a restart resumes rather than
// logging in again.
func (c *Client) refreshed(did string) atclient.RefreshCallback {
	return func(ctx context.Context, data atclient.PasswordSessionData) {
		if c.OnRefresh != nil {
			c.OnRefresh(did)
		}
		err := c.sessions.SaveSession(context.WithoutCancel(ctx), Session{
			DID: did, Host: c.host, AccessToken: data.AccessToken, RefreshToken: data.RefreshToken,
		})
		if err != nil {
			c.log.Warn("could not cache refreshed PDS session", "did", did, "err", err)
		}
	}
}

// withSession runs fn with did's session and the context fn must make its
// requests with (it carries what a 429 says to noteLimit). When the
// session is no longer accepted (refresh token expired or revoked) it logs
// in once more and retries. A rate-limited account's calls are refused without contacting
// the PDS until the limit resets (ratelimit.go).
func (c *Client) withSession(ctx context.Context, did string, fn func(ctx context.Context, api *atclient.APIClient) error) error {
	if err := c.checkLimit(did); err != nil {
		return err
	}
	ctx, note := withRateNote(ctx)
	api, err := c.session(ctx, did, false)
	if err != nil {
		return c.noteLimit(did, note, err)
	}
	err = classify(did, c.noteLimit(did, note, fn(ctx, api)))
	if !isAuthFailure(err) {
		return err
	}
	c.log.Info("PDS session no longer valid, logging in again", "did", did)
	if derr := c.sessions.DeleteSession(ctx, did); derr != nil {
		return derr
	}
	api, err = c.session(ctx, did, true)
	if err != nil {
		return c.noteLimit(did, note, err)
	}
	return classify(did, c.noteLimit(did, note, fn(ctx, api)))
}

// ForgetSession drops the cached session of did (after a purge).
func (c *Client) ForgetSession(ctx context.Context, did string) error {
	c.mu.Lock()
	c.clients.Remove(did)
	c.mu.Unlock()
	return c.sessions.DeleteSession(ctx, did)
}

func apiErrorStatus(err error) int {
	var ae *atclient.APIError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

func apiErrorName(err error) string {
	var ae *atclient.APIError
	if errors.As(err, &ae) {
		return ae.Name
	}
	return ""
}

func isAuthFailure(err error) bool {
	if err == nil {
		return false
	}
	switch apiErrorName(err) {
	case "ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing":
		return true
	}
	return apiErrorStatus(err) == http.StatusUnauthorized
}

// inactiveNames are PDS answers about the account itself, with the status
// each one reports: nothing succeeds until the account is active again.
var inactiveNames = map[string]string{
	"RepoDeactivated":    model.StatusDeactivated,
	"AccountDeactivated": model.StatusDeactivated,
	"RepoTakendown":      model.StatusTakendown,
	"AccountTakedown":    model.StatusTakendown,
	"RepoSuspended":      model.StatusSuspended,
	"RepoNotFound":       model.StatusDeleted,
	"AccountNotFound":    model.StatusDeleted,
}

// classify sorts an XRPC error about did's repo into transport (retry
// later), inactive or permanent (dead-letter), or other (the request was
// refused).
func classify(did string, err error) error {
	if err == nil {
		return nil
	}
	if model.IsTransport(err) || model.IsPermanent(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &model.TransportError{Err: err}
	}
	var ae *atclient.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == http.StatusTooManyRequests, ae.StatusCode == http.StatusBadGateway,
			ae.StatusCode == http.StatusServiceUnavailable, ae.StatusCode == http.StatusGatewayTimeout:
			return &model.TransportError{Err: err}
		case inactiveNames[ae.Name] != "":
			return model.Inactive(did, inactiveNames[ae.Name])
		}
		return err
	}
	// Anything that is not an XRPC answer is a failure to talk at all:
	// refused, reset, timed out, DNS.
	return &model.TransportError{Err: err}
}

// decodeRecord decodes a JSON record value, saying why when it cannot.
func decodeRecord(raw json.RawMessage) (model.RecordValue, string) {
	var v model.RecordValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return model.RecordValue{}, "record fields have the wrong types"
	}
	return v, model.ValidateRecord(&v)
}

func rkeyOf(uri string) string {
	if i := strings.LastIndexByte(uri, '/'); i >= 0 {
		return uri[i+1:]
	}
	return uri
}
