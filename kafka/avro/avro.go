// Package avro is a kafka.Codec for Apache Avro's binary encoding, built on
// github.com/hamba/avro/v2, optionally in the Confluent wire format that
// schema-registry clients expect: a zero magic byte and the schema's
// registry id, 4 bytes big-endian, before the Avro data.
//
// A codec holds one schema, parsed once. Go values map to it as hamba/avro
// maps them: structs by their `avro:"field"` tags, or map[string]any.
//
//	codec, err := avro.New(schemaJSON)
//	err = kafka.SendValue(ctx, producer, codec, nil, event) // encode and wait for the ack
//	err = codec.Unmarshal(msg.Value(), &event)              // in a handler
package avro

import (
	"encoding/binary"
	"errors"
	"fmt"

	hamba "github.com/hamba/avro/v2"

	"github.com/kafkahub/kafkahub/kafka"
)

// ContentType is the content-type header value kafka.NewProducerMessage
// sets for a record this package encoded.
const ContentType = "avro/binary"

// wireHeader is the length of the Confluent wire format's prefix: the magic
// byte and the schema id.
const wireHeader = 5

var (
	// ErrWireFormat is returned by Unmarshal, with WithConfluentWireFormat,
	// for data too short to hold the prefix or not starting with magic
	// byte 0.
	ErrWireFormat = errors.New("avro: not in the Confluent wire format")
	// ErrSchemaID is returned by Unmarshal, with WithConfluentWireFormat,
	// for data written with another schema id: the codec has only its own
	// schema to read it with.
	ErrSchemaID = errors.New("avro: written with another schema id")
)

// api is this package's own frozen hamba configuration, so no setting of
// hamba's process-wide DefaultConfig reaches it.
var api = hamba.Config{}.Freeze()

// Codec encodes and decodes values with one Avro schema. It is safe for
// concurrent use.
type Codec struct {
	schema   hamba.Schema
	wire     bool
	schemaID uint32
}

var _ kafka.Codec = (*Codec)(nil)

// Option configures a Codec.
type Option func(*Codec)

// WithConfluentWireFormat writes the Confluent wire format: magic byte 0,
// then id (the schema's id in the schema registry) as 4 bytes big-endian,
// then the Avro data. Unmarshal then requires the same prefix and id.
func WithConfluentWireFormat(id uint32) Option {
	return func(c *Codec) { c.wire, c.schemaID = true, id }
}

// New parses schema, an Avro schema in JSON, into a codec. The schema's
// named types are kept in a cache of the codec's own, not in hamba's
// process-wide one, so two codecs may define the same name differently.
func New(schema string, opts ...Option) (*Codec, error) {
	s, err := hamba.ParseWithCache(schema, "", &hamba.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("avro: parsing schema: %w", err)
	}
	c := &Codec{schema: s}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ContentType implements kafka.Codec.
func (c *Codec) ContentType() string { return ContentType }

// Marshal implements kafka.Codec: v encoded with the codec's schema, after
// the wire-format prefix if configured.
func (c *Codec) Marshal(v any) ([]byte, error) {
	data, err := api.Marshal(c.schema, v)
	if err != nil {
		return nil, fmt.Errorf("avro: encoding %T: %w", v, err)
	}
	if !c.wire {
		return data, nil
	}
	out := make([]byte, wireHeader, wireHeader+len(data))
	binary.BigEndian.PutUint32(out[1:], c.schemaID)
	return append(out, data...), nil
}

// Unmarshal implements kafka.Codec: it decodes data into v, a pointer,
// checking the wire-format prefix first if configured.
func (c *Codec) Unmarshal(data []byte, v any) error {
	if c.wire {
		if len(data) < wireHeader || data[0] != 0 {
			return fmt.Errorf("%w: %d bytes, first %x", ErrWireFormat, len(data), data[:min(len(data), 1)])
		}
		if id := binary.BigEndian.Uint32(data[1:wireHeader]); id != c.schemaID {
			return fmt.Errorf("%w: %d, not %d", ErrSchemaID, id, c.schemaID)
		}
		data = data[wireHeader:]
	}
	if err := api.Unmarshal(c.schema, data, v); err != nil {
		return fmt.Errorf("avro: decoding into %T: %w", v, err)
	}
	return nil
}
