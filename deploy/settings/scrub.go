package settings

import (
	"regexp"
	"strconv"
	"strings"
)

// hidden stands in for whatever may be a credential.
const hidden = "xxxxx"

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// ScrubQuoted hides every quoted piece of an error message but the words
// in keep (compared in lower case). Parsers and drivers quote the input
// they choke on, which may be a password.
func ScrubQuoted(msg string, keep map[string]bool) string {
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if s, err := strconv.Unquote(q); err == nil && keep[strings.ToLower(s)] {
			return q
		}
		return `"` + hidden + `"`
	})
}

// mongoOptionNames are the words a MongoDB URI's error may quote without
// showing a secret: the schemes and the option names of its query. Only
// what follows the last "@" is read, so nothing of a password (even one
// with an "@" the driver refuses) is taken for a name.
func mongoOptionNames(uri string) map[string]bool {
	names := map[string]bool{"mongodb": true, "mongodb+srv": true}
	if at := strings.LastIndex(uri, "@"); at >= 0 {
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
