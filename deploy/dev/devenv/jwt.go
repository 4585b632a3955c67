package devenv

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// ExpireAccessToken re-signs a real access token of the dev PDS with an
// expiry in the past, everything else unchanged: the PDS then answers
// ExpiredToken, which is what a client sees two hours after its login.
func (p *PDS) ExpireAccessToken(token string) (string, error) {
	if p.JWTSecret == "" {
		return "", errors.New("dev PDS state has no JWT secret: restart it with deploy/dev/stop.sh")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", err
	}
	past := time.Now().Add(-time.Hour).Unix()
	claims["iat"] = past - 60
	claims["exp"] = past
	raw, err = json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw)
	mac := hmac.New(sha256.New, []byte(p.JWTSecret))
	mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}
