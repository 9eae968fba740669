package kafka

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzHeadersShareTheArray: the franz-go engine hands a record's
// headers to kgo, and a fetched record's headers to the handler, without a
// copy; every header must read the same through either type.
func TestFranzHeadersShareTheArray(t *testing.T) {
	hs := []Header{{Key: "a", Value: []byte("1")}, {Key: "", Value: nil}, {Key: "trace", Value: []byte("00-ab")}}
	kh := toFranzHeaders(hs)
	require.Len(t, kh, len(hs))
	for i, h := range hs {
		assert.Equal(t, kgo.RecordHeader{Key: h.Key, Value: h.Value}, kh[i])
	}
	assert.Same(t, &hs[0], (*Header)(&kh[0]), "no copy")
	hs[2].Value = []byte("changed")
	assert.Equal(t, "changed", string(kh[2].Value), "one array")

	back := fromFranzHeaders(kh)
	assert.Equal(t, hs, back)
	assert.Same(t, &kh[1], (*kgo.RecordHeader)(&back[1]))

	assert.Nil(t, toFranzHeaders(nil))
	assert.Nil(t, toFranzHeaders([]Header{}))
	assert.Nil(t, fromFranzHeaders(nil))
}
