package settings

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Kind parses and checks the values of a setting. Its errors say what is
// wrong without quoting the value (a credential, for secret settings):
// the caller quotes it where it may be shown.
type Kind struct {
	// Name is what help text calls a value of this kind.
	Name  string
	parse func(string) (any, error)
}

// Parse parses a value of the kind.
func (k Kind) Parse(s string) (any, error) { return k.parse(s) }

// The kinds of the table. Each parses into the Go type its settings are
// bound to: Bool to bool, Duration to time.Duration, Count to int, Bytes to
// int64, the others to string.
var (
	// Bool is true or false (also 1, 0, t, f, as strconv.ParseBool takes).
	Bool = Kind{"bool", func(s string) (any, error) {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("not a valid boolean (want true or false)")
		}
		return b, nil
	}}
	// Duration is a Go duration (90s, 15m, 24h), not negative.
	Duration = Kind{"duration", func(s string) (any, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, errors.New("not a valid duration (want e.g. 90s, 15m, 24h; 0 for none)")
		}
		return d, nil
	}}
	// Bytes is a size in bytes, with an optional unit (64MiB, 500MB,
	// 1048576), at least one byte.
	Bytes = Kind{"size", func(s string) (any, error) {
		n, err := humanize.ParseBytes(s)
		if err != nil || n < 1 || n > math.MaxInt64 {
			return nil, errors.New("not a valid size (want e.g. 64MiB, 500MB or a number of bytes)")
		}
		return int64(n), nil
	}}
	// Addr is a listen address, host:port.
	Addr = Kind{"host:port", func(s string) (any, error) {
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, errors.New("not a valid address (want host:port)")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return nil, errors.New("not a valid address (want host:port, a port from 0 to 65535)")
		}
		return s, nil
	}}
	// Path is a file system path, not empty.
	Path = Kind{"dir", func(s string) (any, error) {
		if strings.TrimSpace(s) == "" {
			return nil, errors.New("empty (want a directory)")
		}
		return s, nil
	}}
	// File is a file's path, or empty for none.
	File = Kind{"file", func(s string) (any, error) {
		if s != "" && strings.TrimSpace(s) == "" {
			return nil, errors.New("blank (want a file's path, or nothing)")
		}
		return s, nil
	}}
	// Token is a bearer token as an Authorization header carries it: at
	// least MinTokenLen printable ASCII characters and no spaces, at most
	// MaxTokenLen; or empty for none.
	Token = Kind{"token", func(s string) (any, error) {
		if s == "" {
			return s, nil
		}
		if len(s) < MinTokenLen || len(s) > MaxTokenLen || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
			return nil, fmt.Errorf("not a valid token (want %d to %d printable ASCII characters, no spaces: e.g. openssl rand -hex 32)", MinTokenLen, MaxTokenLen)
		}
		return s, nil
	}}
	// DatabaseName is a MongoDB database name.
	DatabaseName = Kind{"name", func(s string) (any, error) {
		if s == "" || len(s) > 63 || strings.ContainsAny(s, "/\\. \"$*<>:|?\x00") {
			return nil, errors.New("not a valid MongoDB database name")
		}
		return s, nil
	}}
	// LogFormat is json, text, or empty for the default.
	LogFormat = Kind{"format", func(s string) (any, error) {
		switch s {
		case "", "json", "text":
			return s, nil
		}
		return nil, errors.New("not a valid log format (want json or text)")
	}}
	// LogLevel is a slog level: debug, info, warn, error (and offsets such
	// as info+2, as slog reads them).
	LogLevel = Kind{"level", func(s string) (any, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(s)); err != nil {
			return nil, errors.New("not a valid log level (want debug, info, warn or error)")
		}
		return s, nil
	}}
	// HTTPURL is an http or https URL with a host, or empty for none.
	HTTPURL = Kind{"URL", func(s string) (any, error) {
		return s, checkURL(s, "an http(s) URL", "http", "https")
	}}
	// WebSocketURL is a ws or wss URL with a host, or empty for none.
	WebSocketURL = Kind{"URL", func(s string) (any, error) {
		return s, checkURL(s, "a ws(s) URL", "ws", "wss")
	}}
	// NATSURL is what nats.Connect takes: URLs separated by commas, each
	// nats://, tls://, ws:// or wss:// (nats:// when there is no scheme),
	// websocket and plain not mixed; or empty for none.
	NATSURL = Kind{"URLs", func(s string) (any, error) {
		ws := -1
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if !strings.Contains(part, "://") {
				part = "nats://" + part
			}
			if err := checkURL(part, "a NATS URL", "nats", "tls", "ws", "wss"); err != nil {
				return nil, err
			}
			isWS := 0
			if strings.HasPrefix(part, "ws") {
				isWS = 1
			}
			if ws >= 0 && ws != isWS {
				return nil, errors.New("not a valid NATS URL list: websocket and plain URLs mixed")
			}
			ws = isWS
		}
		return s, nil
	}}
	// MongoURI is a MongoDB connection string as the driver takes it
	// (mongodb:// or mongodb+srv://, several hosts, options), checked with
	// the driver's own parser (ParseMongoURI); or empty for none.
	MongoURI = Kind{"URI", func(s string) (any, error) {
		if s == "" {
			return s, nil
		}
		if _, err := ParseMongoURI(s); err != nil {
			return nil, fmt.Errorf("not a valid MongoDB URI: %s", ScrubQuoted(err.Error(), mongoOptionNames(s)))
		}
		return s, nil
	}}
)

// The bounds of a Token. A token shorter than 16 characters could be
// guessed; one of 32 random bytes in hex (64 characters) cannot.
const (
	MinTokenLen = 16
	MaxTokenLen = 1024
)

// Count is a whole number of at least min.
func Count(min int) Kind {
	return Kind{"int", func(s string) (any, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < min {
			return nil, fmt.Errorf("not a valid count (want a whole number of at least %d)", min)
		}
		return n, nil
	}}
}

// checkURL checks that s is empty or a URL with one of the schemes and a
// host. The parser's message is scrubbed of what it quotes.
func checkURL(s, want string, schemes ...string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not %s: %s", want, ScrubQuoted(err.Error(), nil))
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	switch {
	case !ok:
		return fmt.Errorf("not %s (want %s://…)", want, strings.Join(schemes, "://…, "))
	case u.Host == "":
		return fmt.Errorf("not %s: no host", want)
	}
	return nil
}
