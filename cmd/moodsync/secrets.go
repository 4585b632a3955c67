package main

import (
	"net/url"
	"strings"

	"github.com/whistlegraph/moodsync/settings"
)

// hidden stands in for whatever may be a credential.
const hidden = "xxxxx"

// redactURL returns a URL setting fit for a log line or an error, in every
// form the drivers accept:
//
//   - MongoDB URIs (mongodb://, mongodb+srv://; several hosts, options,
//     any punctuation in an escaped password), read with the driver's own
//     parser: scheme, hosts and database; the user name only beside a
//     hidden password; options hidden.
//   - NATS URLs (nats://, tls://, or no scheme), a list as nats.go reads
//     it: split on commas, each with its password hidden, a name without a
//     password (a token, an nkey seed) hidden whole, query values hidden.
//   - Any other URL (http(s), ws(s)) the same way, as one URL: a comma
//     may be part of its password.
//
// What does not parse as its driver would read it is shown only from its
// last "@" on, without query or fragment, so a password the parsers choke
// on (an unescaped "@", "," or "%") is never cut in the wrong place.
func redactURL(raw string) string {
	scheme, _, hasScheme := strings.Cut(raw, "://")
	switch {
	case scheme == "mongodb" || scheme == "mongodb+srv":
		return redactMongoURI(raw)
	case hasScheme && scheme != "nats" && scheme != "tls":
		if r, ok := redactOneURL(raw); ok {
			return r
		}
		return redactOpaque(raw)
	}
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		r, ok := redactOneURL(strings.TrimSpace(p))
		if !ok {
			return redactOpaque(raw)
		}
		parts[i] = r
	}
	return strings.Join(parts, ",")
}

// redactOneURL redacts one URL; ok is false unless it parses as one URL
// with a host (nats:// is implied without a scheme, as nats.go does) and
// nothing that looks like another URL's user info or host is left in it.
func redactOneURL(p string) (string, bool) {
	if p == "" {
		return "", true
	}
	full := p
	if !strings.Contains(p, "://") {
		full = "nats://" + p
	}
	u, err := url.Parse(full)
	if err != nil || u.Host == "" || strings.ContainsAny(u.Host, ",@") || strings.Contains(u.Path, "@") {
		return "", false
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
	s := u.String()
	if full != p {
		s = strings.TrimPrefix(s, "nats://")
	}
	return s, true
}

// redactMongoURI shows a MongoDB URI as the driver reads it.
func redactMongoURI(uri string) string {
	cs, err := settings.ParseMongoURI(uri)
	if err != nil {
		return redactOpaque(uri)
	}
	var b strings.Builder
	b.WriteString(cs.Scheme + "://")
	switch {
	case cs.UsernameSet && cs.PasswordSet:
		b.WriteString(url.User(cs.Username).String() + ":" + hidden + "@")
	case cs.UsernameSet || cs.PasswordSet:
		b.WriteString(hidden + "@")
	}
	b.WriteString(strings.Join(cs.RawHosts, ",") + "/" + url.PathEscape(cs.Database))
	if strings.Contains(uri, "?") {
		b.WriteString("?" + hidden)
	}
	return b.String()
}

// redactOpaque shows of a URL that does not parse only its scheme and what
// follows its last "@", without query or fragment.
func redactOpaque(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	} else {
		scheme += "://"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = hidden + rest[at:]
	}
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q+1] + hidden
	}
	return scheme + rest
}

// scrubbedError is an error whose message has every quoted piece hidden
// (a driver's message may quote a URL); it still unwraps to the original.
type scrubbedError struct{ err error }

func (e scrubbedError) Error() string { return settings.ScrubQuoted(e.err.Error(), nil) }
func (e scrubbedError) Unwrap() error { return e.err }
