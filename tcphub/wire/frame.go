package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrameSize is the largest envelope, in bytes, that NewReader,
// NewWriter and AppendFrame accept unless told otherwise.
const DefaultMaxFrameSize = 1 << 20

const (
	headerLen = 4
	// readBufSize is the bufio size NewReader asks for: frames that fit are
	// decoded straight from bufio's buffer without a copy.
	readBufSize = 4096
	// growStep bounds how far the scratch buffer grows ahead of the bytes
	// actually received, so that a peer announcing a large frame and
	// sending little costs little memory.
	growStep = 64 << 10
	// retainLimit is the largest scratch buffer kept between frames. A
	// gateway holds many idle connections; one large frame should not pin
	// a megabyte to each of them.
	retainLimit = 64 << 10
)

// Reader reads frames from a byte stream. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	hdr     [headerLen]byte
	scratch []byte
	err     error // sticky: the stream is out of step
}

// NewReader returns a Reader of r that refuses frames longer than
// maxFrameSize bytes (DefaultMaxFrameSize if maxFrameSize <= 0). If r is a
// *bufio.Reader of at least 4096 bytes it is used as is.
func NewReader(r io.Reader, maxFrameSize int) *Reader {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufSize), max: maxFrameSize}
}

// ReadFrame reads and decodes the next frame. It returns io.EOF only when
// the stream ends cleanly between frames, and io.ErrUnexpectedEOF when it
// ends inside one. The length is checked against the maximum before any
// buffer is sized for it. The returned Frame shares no memory with the
// Reader.
//
// After ErrBadEnvelope, ErrBadVersion or ErrEmptyFrame the stream is still in
// step and ReadFrame may be called again (although the protocol has the
// server close the connection). Any other error, including ErrFrameTooLarge
// and I/O errors, leaves the stream out of step: it is returned again by
// every later call.
//
// ReadFrame does not call Frame.Validate.
func (r *Reader) ReadFrame() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		r.err = err
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:])
	if n == 0 {
		return Frame{}, ErrEmptyFrame
	}
	if uint64(n) > uint64(r.max) {
		r.err = fmt.Errorf("%w: announced %d bytes, limit %d", ErrFrameTooLarge, n, r.max)
		return Frame{}, r.err
	}
	if int(n) <= r.br.Size() {
		// Decode in place; decodeEnvelope copies what it keeps.
		body, err := r.br.Peek(int(n))
		if err != nil {
			r.err = unexpected(err)
			return Frame{}, r.err
		}
		f, err := decodeEnvelope(body)
		_, _ = r.br.Discard(int(n)) // cannot fail: the bytes are buffered
		return f, err
	}
	body, err := r.readLarge(int(n))
	if err != nil {
		r.err = unexpected(err)
		return Frame{}, r.err
	}
	f, err := decodeEnvelope(body)
	if cap(r.scratch) > retainLimit {
		r.scratch = nil
	}
	return f, err
}

// readLarge reads a frame too large for bufio's buffer into the scratch
// buffer, growing it only as bytes arrive.
func (r *Reader) readLarge(n int) ([]byte, error) {
	buf := r.scratch[:0]
	for len(buf) < n {
		want := min(n-len(buf), growStep)
		if cap(buf)-len(buf) < want {
			grown := make([]byte, len(buf), min(n, max(2*cap(buf), len(buf)+want)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r.br, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			r.scratch = nil
			return nil, err
		}
	}
	r.scratch = buf
	return buf, nil
}

// unexpected turns an end of stream inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends f to dst as a complete frame, length header included,
// and returns the extended slice. It fails with ErrFrameTooLarge if the
// envelope exceeds DefaultMaxFrameSize (use a Writer for another limit) and
// with ErrInvalidFrame if Payload is not a JSON value while Binary is false;
// on failure dst is returned unchanged. It does not call Frame.Validate.
// Encoding into a dst with enough capacity does not allocate.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	return appendFrame(dst, &f, DefaultMaxFrameSize)
}

func appendFrame(dst []byte, f *Frame, limit int) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := appendEnvelope(dst, f)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - headerLen
	if n > limit {
		return dst[:start], fmt.Errorf("%w: encoded %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// Writer writes frames to a byte stream, one Write call per frame so that
// the header and envelope leave together. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	max int
	buf []byte
}

// NewWriter returns a Writer to w that refuses to encode frames longer than
// maxFrameSize bytes (DefaultMaxFrameSize if maxFrameSize <= 0); set it to
// the peer's limit, such as a welcome's max_frame.
func NewWriter(w io.Writer, maxFrameSize int) *Writer {
	if maxFrameSize <= 0 {
		maxFrameSize = DefaultMaxFrameSize
	}
	return &Writer{w: w, max: maxFrameSize}
}

// WriteFrame encodes f and writes it. An encoding error (ErrFrameTooLarge,
// ErrInvalidFrame) writes nothing and leaves the stream usable. It does not
// call Frame.Validate.
func (w *Writer) WriteFrame(f Frame) error {
	buf, err := appendFrame(w.buf[:0], &f, w.max)
	if err == nil {
		_, err = w.w.Write(buf)
	}
	if cap(buf) <= retainLimit {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	return err
}
