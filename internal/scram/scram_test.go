package scram

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRFC7677Vector checks the conversation against the SCRAM-SHA-256 example
// of RFC 7677 section 3 (user "user", password "pencil").
func TestRFC7677Vector(t *testing.T) {
	c := &Client{newHash: sha256.New}
	require.NoError(t, c.Begin("user", "pencil", ""))
	c.nonce = "rOprNGfwEbeRWgbNEkqO"

	first, err := c.Step("")
	require.NoError(t, err)
	require.Equal(t, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", first)

	final, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	require.NoError(t, err)
	require.Equal(t, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", final)
	require.False(t, c.Done())

	_, err = c.Step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
	require.NoError(t, err)
	require.True(t, c.Done())
}

func TestRejectsBadServerSignature(t *testing.T) {
	c := &Client{newHash: sha256.New}
	require.NoError(t, c.Begin("user", "pencil", ""))
	c.nonce = "rOprNGfwEbeRWgbNEkqO"
	_, _ = c.Step("")
	_, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	require.NoError(t, err)
	_, err = c.Step("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
	require.ErrorIs(t, err, ErrProtocol)
	require.False(t, c.Done())
}

func TestRejectsNonceNotExtended(t *testing.T) {
	c := NewSHA512()
	require.NoError(t, c.Begin("u", "p", ""))
	_, _ = c.Step("")
	_, err := c.Step("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	require.ErrorIs(t, err, ErrProtocol)
}
