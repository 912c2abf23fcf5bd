package collapse

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// TokenExpiry reads the exp claim of a build_token (an HS256 JWT) without
// verifying it. That is safe because the gate only uses it to choose which
// of the tokens clients presented to forward: BinderHub verifies whatever
// it receives, and a build_token names the spec and origin, not a user.
func TokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// maxTokenKeys bounds the tokens one flight remembers: one per spelling of
// the spec and origin, and a client could invent origins.
const maxTokenKeys = 64

// Tokens remembers the newest build_token BinderHub accepted per provider
// spec and origin, so a follower held past its own token's expiry can
// present a fresh one that BinderHub accepts for the same spec and origin.
// Callers must only Observe tokens BinderHub took: the gate cannot verify
// a token's signature, and a forged one with a far-off expiry would
// otherwise be handed to other users' launches.
// It is not safe for concurrent use.
type Tokens struct {
	newest map[string]seenToken
}

type seenToken struct {
	token string
	exp   time.Time
}

func tokenKey(providerSpec, origin string) string { return providerSpec + "\x00" + origin }

// Observe records a token BinderHub accepted.
func (t *Tokens) Observe(providerSpec, origin, token string) {
	exp, ok := TokenExpiry(token)
	if !ok {
		return
	}
	if t.newest == nil {
		t.newest = make(map[string]seenToken)
	}
	k := tokenKey(providerSpec, origin)
	if cur, ok := t.newest[k]; ok && !exp.After(cur.exp) {
		return
	}
	if _, ok := t.newest[k]; !ok && len(t.newest) >= maxTokenKeys {
		t.evictOldest()
	}
	t.newest[k] = seenToken{token: token, exp: exp}
}

func (t *Tokens) evictOldest() {
	var oldest string
	var at time.Time
	for k, v := range t.newest {
		if oldest == "" || v.exp.Before(at) {
			oldest, at = k, v.exp
		}
	}
	delete(t.newest, oldest)
}

// TokenChoice says what a held launch presents to BinderHub as its
// build_token.
type TokenChoice int

const (
	// TokenOwn: its own token, unchanged (valid for long enough, absent,
	// or not a JWT whose expiry the gate can read).
	TokenOwn TokenChoice = iota
	// TokenFresher: the newest token BinderHub accepted for the same spec and origin,
	// because its own expires too soon.
	TokenFresher
	// TokenNone: no token at all. Its own expires too soon and nothing
	// fresher is known; BinderHub refuses an expired token with 403 but
	// lets a launch without one through its per-IP rate limit.
	TokenNone
)

func (c TokenChoice) String() string {
	switch c {
	case TokenOwn:
		return "own"
	case TokenFresher:
		return "fresher"
	case TokenNone:
		return "none"
	}
	return "unknown"
}

// ForHeld chooses the build_token for a held launch that presented own and
// is about to be sent to BinderHub: own while it stays valid for at least
// margin more (the time its request may take to reach BinderHub, with
// clock skew), else the newest token BinderHub accepted for the same spec and origin if
// that one does, else none. It never returns a token it knows BinderHub
// will refuse as expired.
func (t *Tokens) ForHeld(providerSpec, origin, own string, now time.Time, margin time.Duration) (string, TokenChoice) {
	if own == "" {
		return "", TokenOwn
	}
	if exp, ok := TokenExpiry(own); !ok || exp.After(now.Add(margin)) {
		return own, TokenOwn
	}
	if cur, ok := t.newest[tokenKey(providerSpec, origin)]; ok && cur.exp.After(now.Add(margin)) {
		return cur.token, TokenFresher
	}
	return "", TokenNone
}
