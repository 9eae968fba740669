package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTripEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, tc := range validFrames() {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.f.Validate())
			var buf bytes.Buffer
			require.NoError(t, NewWriter(&buf, 0).WriteFrame(tc.f))
			require.Equal(t, encode(t, tc.f), buf.Bytes(), "Writer and AppendFrame must agree")

			got, err := NewReader(&buf, 0).ReadFrame()
			require.NoError(t, err)
			require.Equal(t, tc.f, got)
		})
		seen[tc.f.Type] = true
	}
	for _, typ := range types {
		require.True(t, seen[Type(typ)], "no round trip for %s", typ)
	}
}

func TestSplitReads(t *testing.T) {
	var stream []byte
	var want []Frame
	for _, tc := range validFrames() {
		stream = append(stream, encode(t, tc.f)...)
		want = append(want, tc.f)
	}
	got, err := readAll(NewReader(oneByteReader{bytes.NewReader(stream)}, 0))
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, want, got)
}

func TestCoalescedReads(t *testing.T) {
	// Many frames in one buffer, spanning several bufio fills, with a
	// large frame in the middle that does not fit bufio's buffer.
	var stream []byte
	var want []Frame
	for i := range 500 {
		f := Frame{Version: 1, Type: TypeRequest, ID: "r-" + strings.Repeat("x", i%100), Payload: []byte(`{"n":1}`)}
		if i == 250 {
			f.Payload, f.Binary = bytes.Repeat([]byte{0xab}, 300_000), true
		}
		stream = append(stream, encode(t, f)...)
		want = append(want, f)
	}
	got, err := readAll(NewReader(bytes.NewReader(stream), 0))
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, want, got)
}

func TestLargeFrameSplitReads(t *testing.T) {
	f := Frame{Version: 1, Type: TypePush, ID: "m-1", Payload: bytes.Repeat([]byte("z"), 200_000), Binary: true}
	got, err := NewReader(oneByteReader{bytes.NewReader(encode(t, f))}, 0).ReadFrame()
	require.NoError(t, err)
	require.Equal(t, f, got)
}

func TestCleanEOF(t *testing.T) {
	_, err := NewReader(bytes.NewReader(nil), 0).ReadFrame()
	require.Equal(t, io.EOF, err, "io.EOF itself, not wrapped, at a frame boundary")
}

func TestTruncated(t *testing.T) {
	full := encode(t, Frame{Version: 1, Type: TypeAck, ID: "r-1"})
	big := encode(t, Frame{Version: 1, Type: TypePush, ID: "m-1", Payload: make([]byte, 10_000), Binary: true})
	for _, stream := range [][]byte{full[:1], full[:3], full[:4], full[:len(full)-1], big[:5000], big[:len(big)-1]} {
		r := NewReader(bytes.NewReader(stream), 0)
		_, err := r.ReadFrame()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "%d of %d bytes", len(stream), len(full))
		_, err = r.ReadFrame()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "sticky")
	}
	// A truncated frame after a complete one.
	r := NewReader(bytes.NewReader(append(append([]byte{}, full...), full[:6]...)), 0)
	_, err := r.ReadFrame()
	require.NoError(t, err)
	_, err = r.ReadFrame()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestEmptyFrame(t *testing.T) {
	next := encode(t, Frame{Version: 1, Type: TypePing})
	r := NewReader(bytes.NewReader(append([]byte{0, 0, 0, 0}, next...)), 0)
	_, err := r.ReadFrame()
	require.ErrorIs(t, err, ErrEmptyFrame)
	require.Equal(t, CodeBadFrame, CodeOf(err))
	// The stream is still in step.
	f, err := r.ReadFrame()
	require.NoError(t, err)
	require.Equal(t, TypePing, f.Type)
}

func TestGarbage(t *testing.T) {
	for _, body := range []string{"hello", "\x00\x01\x02", "{", `{"v":1,"t":"ping"}x`, "[1,2]", `"str"`, "null", "\xff\xfe{}", `{"v":1}{"v":1}`} {
		r := NewReader(bytes.NewReader(append(rawFrame(body), encode(t, Frame{Type: TypePong})...)), 0)
		_, err := r.ReadFrame()
		require.ErrorIs(t, err, ErrBadEnvelope, "%q", body)
		require.Equal(t, CodeBadFrame, CodeOf(err))
		f, err := r.ReadFrame()
		require.NoError(t, err, "stream stays in step after %q", body)
		require.Equal(t, TypePong, f.Type)
	}
}

func TestBadEnvelopeWrapsJSONError(t *testing.T) {
	_, err := NewReader(bytes.NewReader(rawFrame(`{"v":1,`)), 0).ReadFrame()
	require.ErrorIs(t, err, ErrBadEnvelope)
	var syntax *json.SyntaxError
	require.ErrorAs(t, err, &syntax)
}

func TestTooLarge(t *testing.T) {
	body := `{"v":1,"t":"push","id":"m","p":"` + strings.Repeat("a", 100) + `"}`
	r := NewReader(bytes.NewReader(rawFrame(body)), 64)
	_, err := r.ReadFrame()
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.ErrorContains(t, err, fmt.Sprintf("announced %d bytes, limit 64", len(body)))
	require.Equal(t, CodeTooLarge, CodeOf(err))
	_, err = r.ReadFrame()
	require.ErrorIs(t, err, ErrFrameTooLarge, "sticky: the body was not consumed")

	// Exactly at the limit is fine.
	got, err := NewReader(bytes.NewReader(rawFrame(body)), len(body)).ReadFrame()
	require.NoError(t, err)
	require.Equal(t, "m", got.ID)
}

// hostileHeader announces n bytes and then sends only a few.
func hostileHeader(n uint32) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), `{"v":1`...)
}

func TestHugeAnnouncedLengthDoesNotAllocate(t *testing.T) {
	src := bytes.NewReader(nil)
	r := NewReader(src, 0)
	stream := hostileHeader(3 << 30) // 3 GiB
	run := func() {
		src.Reset(stream)
		r.br.Reset(src)
		r.err = nil
		_, err := r.ReadFrame()
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("got %v", err)
		}
	}
	// Only the error value is allocated: a few small objects (a few more
	// under the race detector), nowhere near the announced size.
	require.LessOrEqual(t, testing.AllocsPerRun(100, run), 8.0)
	perRun := bytesAllocated(func() {
		for range 100 {
			run()
		}
	}) / 100
	require.Less(t, perRun, uint64(1024), "bytes allocated per rejected frame")
}

func TestAnnouncedMaxWithFewBytesAllocatesLittle(t *testing.T) {
	// Within the limit but never sent: memory must follow the bytes that
	// arrive, not the length announced, or idle hostile connections could
	// each pin a megabyte.
	stream := hostileHeader(DefaultMaxFrameSize)
	var err error
	n := bytesAllocated(func() {
		_, err = NewReader(bytes.NewReader(stream), 0).ReadFrame()
	})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Less(t, n, uint64(2*growStep+16<<10), "allocated %d bytes", n)
}

func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestScratchNotRetained(t *testing.T) {
	f := Frame{Version: 1, Type: TypePush, ID: "m", Payload: make([]byte, 500_000), Binary: true}
	small := Frame{Version: 1, Type: TypePush, ID: "m", Payload: make([]byte, 10_000), Binary: true}
	r := NewReader(bytes.NewReader(append(encode(t, small), encode(t, f)...)), 0)
	_, err := r.ReadFrame()
	require.NoError(t, err)
	require.NotNil(t, r.scratch, "a modest buffer is kept for reuse")
	_, err = r.ReadFrame()
	require.NoError(t, err)
	require.Nil(t, r.scratch, "a large buffer is released")

	var buf bytes.Buffer
	w := NewWriter(&buf, 0)
	require.NoError(t, w.WriteFrame(f))
	require.Nil(t, w.buf)
}

func TestReaderErrorIsSticky(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(bytes.NewReader([]byte{0, 0}), errReader{boom}), 0)
	_, err := r.ReadFrame()
	require.ErrorIs(t, err, boom)
	_, err = r.ReadFrame()
	require.ErrorIs(t, err, boom)
	require.Equal(t, Code(""), CodeOf(err))
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestUsesGivenBufioReader(t *testing.T) {
	br := bufio.NewReaderSize(bytes.NewReader(encode(t, Frame{Type: TypePing})), 8192)
	r := NewReader(br, 0)
	require.Same(t, br, r.br)
}

func TestEncodeTooLarge(t *testing.T) {
	f := Frame{Type: TypePush, ID: "m", Payload: make([]byte, DefaultMaxFrameSize), Binary: true}
	dst := []byte("keep")
	out, err := AppendFrame(dst, f)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.Equal(t, []byte("keep"), out)

	var buf bytes.Buffer
	w := NewWriter(&buf, 50)
	err = w.WriteFrame(Frame{Type: TypeError, Code: CodeInternal, Message: strings.Repeat("x", 50)})
	require.ErrorIs(t, err, ErrFrameTooLarge)
	require.Zero(t, buf.Len(), "nothing written")
	require.NoError(t, w.WriteFrame(Frame{Type: TypePing}))
}

func TestEncodeRejectsInvalidJSONPayload(t *testing.T) {
	_, err := AppendFrame(nil, Frame{Type: TypeRequest, ID: "r", Payload: []byte("not json")})
	require.ErrorIs(t, err, ErrInvalidFrame)
	require.ErrorContains(t, err, "p:")
}

func TestAppendFrameAppends(t *testing.T) {
	a := encode(t, Frame{Type: TypePing})
	b := encode(t, Frame{Type: TypePong})
	both, err := AppendFrame(append([]byte{}, a...), Frame{Type: TypePong})
	require.NoError(t, err)
	require.Equal(t, append(a, b...), both)
}

func TestWriterOneWritePerFrame(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw, 0)
	for range 3 {
		require.NoError(t, w.WriteFrame(Frame{Type: TypeAck, ID: "r-1"}))
	}
	require.Equal(t, 3, cw.writes)
}

type countingWriter struct{ writes int }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return len(p), nil
}
