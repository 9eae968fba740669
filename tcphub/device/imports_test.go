package device_test

import (
	"go/build"
	"testing"
)

// TestImportsOnlyWireAndStdlib: a device binary links the client, the wire
// package and the standard library, and nothing of the gateway or Kafka.
func TestImportsOnlyWireAndStdlib(t *testing.T) {
	allowed := map[string]bool{
		"github.com/kafkahub/kafkahub/tcphub/device":             true,
		"github.com/kafkahub/kafkahub/tcphub/wire":               true,
		"github.com/kafkahub/kafkahub/tcphub/internal/jsonvalid": true,
	}
	seen := map[string]bool{}
	var walk func(path, from string)
	walk = func(path, from string) {
		if seen[path] {
			return
		}
		seen[path] = true
		p, err := build.Default.Import(path, ".", 0)
		if err != nil {
			t.Fatalf("importing %s: %v", path, err)
		}
		if p.Goroot {
			return
		}
		if !allowed[path] {
			t.Errorf("%s imports %s: a device package may import only tcphub/wire and the standard library", from, path)
			return
		}
		for _, imp := range p.Imports {
			walk(imp, path)
		}
	}
	walk("github.com/kafkahub/kafkahub/tcphub/device", "the test")
	if len(seen) < 10 {
		t.Fatalf("only %d packages walked: the walk is broken", len(seen))
	}
}
