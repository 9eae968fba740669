package kafka

import (
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgo.RecordHeader and Header are the same struct, field for field (Key
// string, Value []byte). This conversion compiles only while that holds,
// and it is what makes it sound to read one's slice as the other's.
var _ = kgo.RecordHeader(Header{})

// toFranzHeaders returns hs as kgo headers sharing hs's array, instead of a
// copy per produced record: kgo only reads a record's headers, and the
// producer's caller does not modify a message until it is reported.
func toFranzHeaders(hs []Header) []kgo.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	return unsafe.Slice((*kgo.RecordHeader)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}

// fromFranzHeaders returns a fetched record's headers as Headers sharing
// their array, instead of a copy per consumed record: kgo makes the slice
// for that record alone and does not touch it after handing the record out.
func fromFranzHeaders(hs []kgo.RecordHeader) []Header {
	if len(hs) == 0 {
		return nil
	}
	return unsafe.Slice((*Header)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}
