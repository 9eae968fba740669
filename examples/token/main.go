// Command token mints a device token for a gateway that authenticates
// devices with an HMAC secret (tcphub.NewHMACAuthenticator), as a
// provisioning service would, and prints it:
//
//	TCPHUB_HMAC_SECRET=... go run ./examples/token -id sensor-1 -ttl 24h
//	TCPHUB_HMAC_SECRET=... go run ./examples/token -id sensor-1 -key-id k2   # a v2 token naming its key
//
// With -key-id the token names the key it was signed with, so that
// gateways rotating secrets (examples/gateway -hmac-key-id and
// -hmac-previous-secret-file) check it with the right one.
//
// The secret stays with the gateway and the provisioning service; a device
// is given only its token (examples/device -token).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kafkahub/kafkahub/tcphub"
)

func main() {
	id := flag.String("id", "device-1", "device id the token is for")
	ttl := flag.Duration("ttl", 24*time.Hour, "how long the token is valid")
	secretFile := flag.String("secret-file", "", "file holding the HMAC secret (or set TCPHUB_HMAC_SECRET)")
	keyID := flag.String("key-id", "", "name the secret's key in the token (a v2 token); empty: a v1 token")
	flag.Parse()
	if err := run(*id, *ttl, *secretFile, *keyID); err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		os.Exit(1)
	}
}

func run(id string, ttl time.Duration, secretFile, keyID string) error {
	secret := os.Getenv("TCPHUB_HMAC_SECRET")
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return err
		}
		secret = strings.TrimSpace(string(b))
	}
	if secret == "" {
		return errors.New("no secret: set TCPHUB_HMAC_SECRET or -secret-file")
	}
	if ttl <= 0 {
		return fmt.Errorf("-ttl must be positive, got %v", ttl)
	}
	var tok string
	var err error
	if keyID != "" {
		tok, err = tcphub.NewKeyedToken(keyID, []byte(secret), id, time.Now().Add(ttl))
	} else {
		tok, err = tcphub.NewToken([]byte(secret), id, ttl)
	}
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
