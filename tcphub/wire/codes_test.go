package wire

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodeFatal(t *testing.T) {
	open := []Code{CodeRateLimited, CodeTooManyInFlight, CodeUnavailable, CodeInternal, CodeNotFound, CodeRecordTooLarge}
	closed := []Code{CodeBadFrame, CodeBadVersion, CodeUnauthenticated, CodeTooLarge, CodeSlowConsumer, CodeHandshakeTimeout, CodeDuplicate}
	require.Len(t, append(open, closed...), len(codes), "every code is classified")
	for _, c := range open {
		require.False(t, c.Fatal(), c)
	}
	for _, c := range closed {
		require.True(t, c.Fatal(), c)
	}
	require.True(t, Code("from_the_future").Fatal())
}

func TestCodeOf(t *testing.T) {
	for err, want := range map[error]Code{
		nil:                                   "",
		io.EOF:                                "",
		io.ErrUnexpectedEOF:                   "",
		errors.New("conn reset"):              "",
		fmt.Errorf("x: %w", ErrFrameTooLarge): CodeTooLarge,
		fmt.Errorf("x: %w", ErrBadVersion):    CodeBadVersion,
		fmt.Errorf("x: %w", ErrEmptyFrame):    CodeBadFrame,
		fmt.Errorf("x: %w", ErrBadEnvelope):   CodeBadFrame,
		fmt.Errorf("x: %w", ErrInvalidFrame):  CodeBadFrame,
	} {
		require.Equal(t, want, CodeOf(err), "%v", err)
	}
}
