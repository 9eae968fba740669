package avro_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	hamba "github.com/hamba/avro/v2"

	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafka/avro"
	"github.com/kafkahub/kafkahub/kafkatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const schema = `{
  "type": "record", "name": "ContentPublished", "namespace": "test",
  "fields": [
    {"name": "url", "type": "string"},
    {"name": "count", "type": "int"},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}
  ]
}`

type event struct {
	URL   string   `avro:"url"`
	Count int32    `avro:"count"`
	Tags  []string `avro:"tags"`
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []avro.Option
	}{{"plain", nil}, {"confluent", []avro.Option{avro.WithConfluentWireFormat(42)}}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := avro.New(schema, tc.opts...)
			require.NoError(t, err)
			in := event{URL: "/a/b", Count: -7, Tags: []string{"x", "y"}}
			data, err := c.Marshal(in)
			require.NoError(t, err)
			var out event
			require.NoError(t, c.Unmarshal(data, &out))
			assert.Equal(t, in, out)

			var generic map[string]any
			require.NoError(t, c.Unmarshal(data, &generic))
			assert.Equal(t, "/a/b", generic["url"])
		})
	}
}

// TestWireBytes pins the encoding byte for byte: Avro's zigzag varints and
// length-prefixed strings, then the Confluent prefix (magic 0, id
// big-endian).
func TestWireBytes(t *testing.T) {
	in := event{URL: "ab", Count: 3}
	avroBytes := []byte{
		0x04, 'a', 'b', // string: length 2 as zigzag varint 4, then the bytes
		0x06, // int 3 as zigzag varint 6
		0x00, // empty array: a block count of 0
	}
	plain, err := avro.New(schema)
	require.NoError(t, err)
	data, err := plain.Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, avroBytes, data)

	wire, err := avro.New(schema, avro.WithConfluentWireFormat(0x01020304))
	require.NoError(t, err)
	data, err = wire.Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, append([]byte{0x00, 0x01, 0x02, 0x03, 0x04}, avroBytes...), data)
	assert.Equal(t, "avro/binary", wire.ContentType())
}

func TestBadInput(t *testing.T) {
	_, err := avro.New(`{"type": "record", "name": "x"`)
	require.Error(t, err, "malformed schema")
	_, err = avro.New(`{"type": "nonsense"}`)
	require.Error(t, err, "unknown type")

	c, err := avro.New(schema)
	require.NoError(t, err)
	_, err = c.Marshal("not a record")
	require.ErrorContains(t, err, "avro: encoding string")
	var out event
	require.Error(t, c.Unmarshal([]byte{0x04, 'a'}, &out), "truncated")
	require.Error(t, c.Unmarshal([]byte{0x04, 'a', 'b', 0x06, 0x00}, out), "not a pointer")

	wire, err := avro.New(schema, avro.WithConfluentWireFormat(7))
	require.NoError(t, err)
	good, err := wire.Marshal(event{URL: "u"})
	require.NoError(t, err)
	require.ErrorIs(t, wire.Unmarshal(good[:4], &out), avro.ErrWireFormat, "shorter than the prefix")
	require.ErrorIs(t, wire.Unmarshal(nil, &out), avro.ErrWireFormat)
	bad := append([]byte{1}, good[1:]...)
	require.ErrorIs(t, wire.Unmarshal(bad, &out), avro.ErrWireFormat, "magic byte not 0")
	other, err := avro.New(schema, avro.WithConfluentWireFormat(8))
	require.NoError(t, err)
	require.ErrorIs(t, other.Unmarshal(good, &out), avro.ErrSchemaID)
	require.NoError(t, wire.Unmarshal(good, &out))
	assert.Equal(t, "u", out.URL)
}

// TestProcessWideCacheUntouched: a codec's named types stay in a cache of
// its own; hamba's process-wide one, which other code in the process may
// use, does not learn them.
func TestProcessWideCacheUntouched(t *testing.T) {
	_, err := avro.New(`{"type": "record", "name": "OnlyHere", "namespace": "kafkahub.test", "fields": [{"name": "a", "type": "int"}]}`)
	require.NoError(t, err)
	assert.Nil(t, hamba.DefaultSchemaCache.Get("kafkahub.test.OnlyHere"))
}

// TestSendValue is dp-kafka's Send(ctx, schema, event) as one line, through
// kafkatest's fake producer: encoded, content-type set, acknowledged.
func TestSendValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := kafkatest.NewProducer(&kafka.ProducerConfig{Topic: "content-published"})
	defer p.Close(ctx)
	codec, err := avro.New(schema, avro.WithConfluentWireFormat(3))
	require.NoError(t, err)

	require.NoError(t, kafka.SendValue(ctx, p, codec, nil, event{URL: "/x", Count: 1}))

	require.ErrorContains(t, kafka.SendValue(ctx, p, codec, nil, 42), "avro: encoding int", "nothing is sent")
	msgs := p.Messages()
	require.Len(t, msgs, 1)
	ct, _ := msgs[0].Header(kafka.HeaderContentType)
	assert.Equal(t, avro.ContentType, string(ct))
	var got event
	require.NoError(t, codec.Unmarshal(msgs[0].Value(), &got))
	assert.Equal(t, event{URL: "/x", Count: 1, Tags: []string{}}, got)
}
