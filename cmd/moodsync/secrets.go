package main

import (
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/whistlegraph/moodsync/deploy/settings"
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

// minSecretLen is the shortest credential hideSecrets looks for: shorter
// ones would blank out common words of every line, and show little.
const minSecretLen = 4

// hideSecrets wraps w (stderr: logs and errors) so that the credentials
// of the secret settings given to this process — in the environment
// (getenv) or on the command line (args) — never pass through it, whoever
// formatted the line: nats.go, the MongoDB driver, net/http and the
// websocket dialer quote URLs in their errors, user info included. A token
// (the admin token) is hidden whole, and so is what a secret file
// (--admin-token-file) holds. What moodsync logs itself is shown through
// redactURL; this is the net under what it does not format.
func hideSecrets(w io.Writer, args []string, getenv func(string) string) io.Writer {
	var secrets []string
	for _, s := range settings.Table {
		if !s.Secret && !s.SecretFile {
			continue
		}
		values := []string{getenv(s.Env)}
		for i, a := range args {
			name, v, eq := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !strings.HasPrefix(a, "-") || name != s.Name:
			case eq:
				values = append(values, v)
			case i+1 < len(args):
				values = append(values, args[i+1])
			}
		}
		for _, v := range values {
			switch {
			case s.SecretFile && v != "":
				if b, err := readTokenFile(v); err == nil {
					secrets = append(secrets, whole(string(b))...)
				}
			case s.SecretFile:
			case s.Kind.Name == settings.Token.Name:
				secrets = append(secrets, whole(v)...)
			default:
				secrets = append(secrets, credentials(v)...)
			}
		}
	}
	if len(secrets) == 0 {
		return w
	}
	// Longest first: a secret that contains another is hidden whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range slices.Compact(secrets) {
		pairs = append(pairs, s, hidden)
	}
	return secretFilter{w: w, r: strings.NewReplacer(pairs...)}
}

// whole is a secret that is hidden whole (a token), without the white
// space around it, when it is long enough to be looked for.
func whole(v string) []string {
	if v = strings.TrimSpace(v); len(v) >= minSecretLen {
		return []string{v}
	}
	return nil
}

// credentials are the pieces of a URL setting that redactURL hides, as
// written and decoded, read from the text alone (so also of what does not
// parse): what stands before the last "@" of the value and of each of its
// comma-separated parts (a password, a token, an nkey seed), query values
// and fragments.
func credentials(raw string) []string {
	var out []string
	add := func(s string) {
		for _, v := range []string{s, unescapeOr(url.PathUnescape, s), unescapeOr(url.QueryUnescape, s)} {
			if len(v) >= minSecretLen {
				out = append(out, v)
			}
		}
	}
	for _, p := range append([]string{raw}, strings.Split(raw, ",")...) {
		_, rest, ok := strings.Cut(p, "://")
		if !ok {
			rest = p
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			info := rest[:at]
			add(info)
			if _, pw, ok := strings.Cut(info, ":"); ok {
				add(pw)
			}
			rest = rest[at+1:]
		}
		rest, frag, _ := strings.Cut(rest, "#")
		add(frag)
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for _, kv := range strings.Split(query, "&") {
				if _, v, ok := strings.Cut(kv, "="); ok {
					add(v)
				}
			}
		}
	}
	return out
}

func unescapeOr(unescape func(string) (string, error), s string) string {
	if u, err := unescape(s); err == nil {
		return u
	}
	return s
}

// secretFilter writes through w with the secrets replaced. The logger
// writes a whole line at a time, so a secret is never split across writes.
type secretFilter struct {
	w io.Writer
	r *strings.Replacer
}

func (f secretFilter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(f.w, f.r.Replace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
