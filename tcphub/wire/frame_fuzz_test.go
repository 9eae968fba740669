package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
)

// FuzzReadFrame feeds arbitrary streams to a Reader. Whatever it decodes
// must re-encode, decode back to the same Frame, and re-encode to the same
// bytes again (the canonical form is a fixed point); and anything it accepts
// must also be JSON that encoding/json accepts.
func FuzzReadFrame(f *testing.F) {
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		f.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		f.Fatal(err)
	}
	var all []byte
	for _, v := range vs {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if v.Frame != nil {
			all = append(all, b...)
		}
	}
	f.Add(all)

	f.Fuzz(func(t *testing.T, stream []byte) {
		// A small limit keeps the fuzzer on the interesting paths,
		// including frames larger than bufio's buffer.
		const limit = 64 << 10
		r := NewReader(bytes.NewReader(stream), limit)
		for range 64 {
			fr, err := r.ReadFrame()
			if err != nil {
				if CodeOf(err) == "" && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				if errors.Is(err, ErrBadEnvelope) || errors.Is(err, ErrBadVersion) || errors.Is(err, ErrEmptyFrame) {
					continue // the stream is still in step
				}
				return
			}
			_ = fr.Validate() // must not panic

			enc, err := appendFrame(nil, &fr, limit)
			if err != nil {
				t.Fatalf("decoded frame does not re-encode: %v\n%#v", err, fr)
			}
			if !json.Valid(enc[4:]) {
				t.Fatalf("encoder produced invalid JSON: %q", enc[4:])
			}
			back, err := NewReader(bytes.NewReader(enc), limit).ReadFrame()
			if err != nil {
				t.Fatalf("re-encoded frame does not decode: %v\n%q", err, enc)
			}
			if !framesEqual(fr, back) {
				t.Fatalf("round trip changed the frame:\n%#v\n%#v", fr, back)
			}
			again, err := appendFrame(nil, &back, limit)
			if err != nil || !bytes.Equal(enc, again) {
				t.Fatalf("encoding is not a fixed point: %v\n%q\n%q", err, enc, again)
			}
		}
	})
}

// framesEqual is reflect.DeepEqual without its nil-versus-empty distinction,
// which the decoder never produces but testify would report.
func framesEqual(a, b Frame) bool {
	pa, pb := a.Payload, b.Payload
	a.Payload, b.Payload = nil, nil
	return reflect.DeepEqual(a, b) && bytes.Equal(pa, pb)
}
