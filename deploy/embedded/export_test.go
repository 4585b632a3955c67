//go:build !production

package embedded

// StartMongoUngated starts FerretDB serving addr itself, without the gate:
// for the tests and the benchmark that show what the gate prevents and costs.
func StartMongoUngated(addr, dir string) (*Mongo, error) { return startMongo(addr, dir, nil, false) }
