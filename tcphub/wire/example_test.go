package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/kafkahub/kafkahub/tcphub/wire"
)

// A device encodes a request; the gateway reads it back, validates it and
// gets the payload bytes exactly as sent.
func Example() {
	var conn bytes.Buffer // stands in for a net.Conn

	w := wire.NewWriter(&conn, wire.DefaultMaxFrameSize)
	err := w.WriteFrame(wire.Frame{
		Type:        wire.TypeRequest,
		ID:          "r-17",
		ContentType: "application/json",
		Payload:     []byte(`{"temp":21.5}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", conn.Bytes()[:4])
	fmt.Println(conn.String()[4:])

	r := wire.NewReader(&conn, wire.DefaultMaxFrameSize)
	f, err := r.ReadFrame()
	if err != nil {
		panic(err)
	}
	if err := f.Validate(); err != nil {
		panic(err)
	}
	fmt.Println(f.Type, f.ID, f.ContentType, string(f.Payload), f.Binary)

	_, err = r.ReadFrame()
	fmt.Println(err == io.EOF)
	// Output:
	// 00 00 00 4b
	// {"v":1,"t":"request","id":"r-17","ct":"application/json","p":{"temp":21.5}}
	// request r-17 application/json {"temp":21.5} false
	// true
}

// AppendFrame encodes into a caller's buffer; binary payloads travel base64
// encoded in pb.
func ExampleAppendFrame() {
	buf := make([]byte, 0, 256)
	buf, err := wire.AppendFrame(buf, wire.Frame{
		Type:    wire.TypeRequest,
		ID:      "r-18",
		Payload: []byte{0xde, 0xad, 0xbe, 0xef},
		Binary:  true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf[4:]))
	// Output:
	// {"v":1,"t":"request","id":"r-18","pb":"3q2+7w=="}
}

// A server answers a bad frame with an error frame carrying the code CodeOf
// picks, and closes the connection when the code is fatal.
func ExampleCodeOf() {
	in := bytes.NewReader([]byte("\x00\x00\x00\x1b{\"v\":1,\"t\":\"request\",\"p\":1}"))
	f, err := wire.NewReader(in, 0).ReadFrame()
	if err == nil {
		err = f.Validate()
	}
	code := wire.CodeOf(err)

	var out bytes.Buffer
	_ = wire.NewWriter(&out, 0).WriteFrame(wire.Frame{Type: wire.TypeError, Code: code, Message: err.Error()})
	fmt.Println(out.String()[4:])
	fmt.Println("close:", code.Fatal(), errors.Is(err, wire.ErrInvalidFrame))
	// Output:
	// {"v":1,"t":"error","code":"bad_frame","msg":"wire: invalid frame: id: required in request"}
	// close: true true
}
