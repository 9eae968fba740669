package tcphub

import (
	"testing"
	"unsafe"
)

// TestConnFitsItsSizeClass guards the memory per idle connection
// (docs/BENCHMARKS.md): a conn of 416 bytes takes a 416-byte allocation,
// one more field moves every connection to the 448- or 480-byte class.
// Grow it only knowingly, and re-measure with cmd/gatewaybench.
func TestConnFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 416 {
		t.Fatalf("conn is %d bytes, over the 416-byte size class", n)
	}
}
