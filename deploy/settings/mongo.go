package settings

import (
	"errors"
	"net/url"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

const srvPrefix = "mongodb+srv://"

// ParseMongoURI reads a MongoDB URI with the driver's own parser and
// checks it, without the DNS lookups the driver makes for mongodb+srv://
// (those belong to connecting, not to checking a setting or showing it): a
// +srv URI is read as a mongodb:// one with its SRV-only options set
// aside, and must name one host without a port. Its errors are the
// driver's, which may quote the URI: scrub them before showing them.
func ParseMongoURI(s string) (*connstring.ConnString, error) {
	srv := strings.HasPrefix(s, srvPrefix)
	if srv {
		s = "mongodb://" + withoutSRVOptions(strings.TrimPrefix(s, srvPrefix))
	}
	cs, err := connstring.Parse(s)
	if err != nil {
		return nil, err
	}
	if err := cs.Validate(); err != nil {
		return nil, err
	}
	if srv {
		if len(cs.Hosts) != 1 || strings.Contains(cs.RawHosts[0], ":") {
			return nil, errors.New("a mongodb+srv URI names exactly one host, without a port")
		}
		cs.Scheme = connstring.SchemeMongoDBSRV
	}
	return cs, nil
}

// withoutSRVOptions drops the options only a +srv URI may carry.
func withoutSRVOptions(rest string) string {
	base, query, ok := strings.Cut(rest, "?")
	if !ok {
		return rest
	}
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(k); err == nil && (strings.EqualFold(k, "srvMaxHosts") || strings.EqualFold(k, "srvServiceName")) {
			continue
		}
		kept = append(kept, kv)
	}
	return base + "?" + strings.Join(kept, "&")
}
