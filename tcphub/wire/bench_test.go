package wire

import (
	"testing"
)

// loopReader replays one buffer forever, so a benchmark reads b.N frames
// without resetting anything inside the timed loop.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

var benchRequest = Frame{
	Version: 1, Type: TypeRequest, ID: "r-1234567", ContentType: "application/json",
	Payload: []byte(`{"temp":21.5,"humidity":40,"battery_mv":3712,"ts":1767225600}`),
}

func BenchmarkReadFrame(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    Frame
	}{
		{"request", benchRequest},
		{"ack", Frame{Version: 1, Type: TypeAck, ID: "r-1234567"}},
		{"binary_16KiB", Frame{Version: 1, Type: TypeRequest, ID: "r-1", Payload: make([]byte, 16<<10), Binary: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			frame := encode(b, bc.f)
			r := NewReader(&loopReader{data: frame}, 0)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    Frame
	}{
		{"request", benchRequest},
		{"ack", Frame{Version: 1, Type: TypeAck, ID: "r-1234567"}},
		{"binary_16KiB", Frame{Version: 1, Type: TypeResponse, ID: "r-1", Status: 200, Payload: make([]byte, 16<<10), Binary: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := encode(b, bc.f)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendFrame(buf[:0], bc.f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	f := benchRequest
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
