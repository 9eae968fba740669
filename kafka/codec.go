package kafka

import (
	"context"
	"encoding/json"
	"fmt"
)

// HeaderContentType is the header NewProducerMessage sets to the codec's content type.
const HeaderContentType = "content-type"

// Codec turns values into record payloads and back. JSON and Raw are
// provided; implement it for Avro, Protobuf or anything else.
type Codec interface {
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

var (
	// JSON encodes values with encoding/json.
	JSON Codec = jsonCodec{}
	// Raw passes []byte and string values through unchanged, and decodes
	// into *[]byte or *string.
	Raw Codec = rawCodec{}
)

// NewProducerMessage encodes v with codec into a record with the given key, and sets
// the content-type header.
func NewProducerMessage(codec Codec, key []byte, v any) (*ProducerMessage, error) {
	b, err := codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("kafka: encoding %T as %s: %w", v, codec.ContentType(), err)
	}
	return &ProducerMessage{
		Key:     key,
		Value:   b,
		Headers: []Header{{Key: HeaderContentType, Value: []byte(codec.ContentType())}},
	}, nil
}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type rawCodec struct{}

func (rawCodec) ContentType() string { return "application/octet-stream" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch t := v.(type) {
	case []byte:
		return t, nil
	case string:
		return []byte(t), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("kafka: Raw codec cannot marshal %T (want []byte or string)", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch t := v.(type) {
	case *[]byte:
		*t = append((*t)[:0], data...)
		return nil
	case *string:
		*t = string(data)
		return nil
	}
	return fmt.Errorf("kafka: Raw codec cannot unmarshal into %T (want *[]byte or *string)", v)
}

// SendValue encodes v with codec into a record with the given key (nil for
// none) and the content-type header, and sends it with p.Send, which waits
// for Kafka's acknowledgement. An encoding error is returned before
// anything is sent.
func SendValue(ctx context.Context, p IProducer, codec Codec, key []byte, v any) error {
	msg, err := NewProducerMessage(codec, key, v)
	if err != nil {
		return err
	}
	return p.Send(ctx, msg)
}
