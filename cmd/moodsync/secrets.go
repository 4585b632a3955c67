package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// hidden stands in for whatever may be a credential.
const hidden = "xxxxx"

// redactURL returns a URL setting fit for a log line or an error: user
// info hidden (a name without a password is a token: hidden whole), query
// values hidden. It takes lists, as nats.go does ("nats://a:4222,
// nats://b:4222"), and shows of a part that does not parse only what
// follows its last "@". MongoDB URIs are shown by checkMongoURI instead,
// through the driver's own parser.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = redactOneURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactOneURL(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		scheme := ""
		if i := strings.Index(p, "://"); i >= 0 {
			scheme, p = p[:i+3], p[i+3:]
		}
		if at := strings.LastIndex(p, "@"); at >= 0 {
			p = hidden + p[at:]
		}
		if q := strings.IndexByte(p, '?'); q >= 0 {
			p = p[:q+1] + hidden
		}
		return scheme + p
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), hidden)
		} else {
			u.User = url.User(hidden)
		}
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = hidden, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// checkMongoURI parses and validates a MongoDB URI with the driver's own
// parser (what connecting does first) and returns it as it may be shown:
// scheme, hosts and database; the user name only beside a hidden password;
// options hidden. Its error quotes nothing of the URI but option names:
// the driver's message may quote a password or an option's value.
func checkMongoURI(uri string) (shown string, err error) {
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		return "", fmt.Errorf("bad MongoDB URI: %s", scrubQuoted(err.Error(), mongoOptionNames(uri)))
	}
	var b strings.Builder
	b.WriteString(cs.Scheme + "://")
	switch {
	case cs.UsernameSet && cs.PasswordSet:
		b.WriteString(url.User(cs.Username).String() + ":" + hidden + "@")
	case cs.UsernameSet || cs.PasswordSet:
		b.WriteString(hidden + "@")
	}
	b.WriteString(strings.Join(cs.RawHosts, ",") + "/" + cs.Database)
	if strings.Contains(uri, "?") {
		b.WriteString("?" + hidden)
	}
	return b.String(), nil
}

// mongoOptionNames are the option names of a URI's query, which an error
// may name. As for the driver, user info ends at the first "@", so nothing
// of a password is taken for a name.
func mongoOptionNames(uri string) map[string]bool {
	names := map[string]bool{}
	if at := strings.Index(uri, "@"); at >= 0 {
		uri = uri[at+1:]
	}
	_, query, _ := strings.Cut(uri, "?")
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); k != "" {
			names[strings.ToLower(k)] = true
		}
	}
	return names
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// scrubQuoted hides every quoted piece of an error message but the names
// in keep (compared in lower case).
func scrubQuoted(msg string, keep map[string]bool) string {
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if s, err := strconv.Unquote(q); err == nil && keep[strings.ToLower(s)] {
			return q
		}
		return `"` + hidden + `"`
	})
}

// scrubbedError is an error whose message went through scrubQuoted; it
// still unwraps to the original.
type scrubbedError struct{ err error }

func (e scrubbedError) Error() string { return scrubQuoted(e.err.Error(), nil) }
func (e scrubbedError) Unwrap() error { return e.err }
