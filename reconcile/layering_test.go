package reconcile

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNothingUnderReconcileImportsAHigherFloor: reconcile is the floor the
// publisher, the consumer, the commands and the deploy tools stand on;
// nothing under it may import them (tests may, to wire real parts).
func TestNothingUnderReconcileImportsAHigherFloor(t *testing.T) {
	const module = "github.com/whistlegraph/moodsync/"
	higher := []string{"publisher", "consumer", "cmd", "deploy"}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, h := range higher {
				if p == module+h || strings.HasPrefix(p, module+h+"/") {
					t.Errorf("reconcile/%s imports %s", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
