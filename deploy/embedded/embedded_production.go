//go:build production

package embedded

import (
	"errors"
	"log/slog"
)

// Available reports whether this binary was built with the embedded servers.
const Available = false

var errLeftOut = errors.New("this production build has no embedded servers: set MOODSYNC_NATS_URL and MOODSYNC_MONGO_URI")

type NATS struct{}

func StartNATS(addr, dir string) (*NATS, error) { return nil, errLeftOut }
func (n *NATS) URL() string                     { return "" }
func (n *NATS) Close()                          {}

type Mongo struct{}

func StartMongo(addr, dir string, log *slog.Logger) (*Mongo, error) { return nil, errLeftOut }
func (m *Mongo) URI() string                                        { return "" }
func (m *Mongo) Close()                                             {}
