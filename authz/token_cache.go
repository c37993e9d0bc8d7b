package authz

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// tokenCache remembers tokens whose signature verified, so a browser's
// repeated requests cost a hash and a map lookup instead of an RSA or ECDSA
// verification (tens of microseconds).
//
// Keys are a 64-bit maphash of the token with a per-process random seed, and
// an entry holds the full token, compared on every hit: a collision (or an
// attacker who could aim for one, which the random seed prevents) is a
// miss, never a wrong identity. The map is split into shards, each with its
// own lock, so concurrent checks rarely contend.
//
// The bound is kept without LRU bookkeeping (which would need a write lock
// on every hit): when a shard is full, put
// looks at a few entries, drops those past their expiry, and if none were,
// drops one arbitrary entry (Go map iteration order is randomized).
type tokenCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

const cacheShards = 16

// evictScan is how many entries put inspects for expired ones when a shard
// is full.
const evictScan = 8

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]*cacheEntry
}

// cacheEntry is one verified token. It is never modified once stored.
type cacheEntry struct {
	token  string
	kid    string
	key    jwk.Key // the key that verified it; a hit requires the same one
	id     *Identity
	claims tokenClaims
	until  time.Time // expiry including the verifying issuer's leeway
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c
}

func (c *tokenCache) hash(token string) uint64 { return maphash.String(c.seed, token) }

func (c *tokenCache) shard(h uint64) *cacheShard { return &c.shards[h>>60] }

// get returns the entry for token (whose hash is h), or nil.
func (c *tokenCache) get(h uint64, token string) *cacheEntry {
	s := c.shard(h)
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	if e == nil || e.token != token {
		return nil
	}
	return e
}

// put stores e under h, evicting to stay within the bound; entries whose
// until is not after now are dead and go first.
func (c *tokenCache) put(h uint64, e *cacheEntry, now time.Time) {
	s := c.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[h]; !ok && len(s.m) >= c.perShard {
		var victim uint64
		n, dropped := 0, false
		for k, old := range s.m {
			if n == 0 {
				victim = k
			}
			if !now.Before(old.until) {
				delete(s.m, k)
				dropped = true
			}
			if n++; n == evictScan {
				break
			}
		}
		if !dropped {
			delete(s.m, victim)
		}
	}
	s.m[h] = e
}

func (c *tokenCache) purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
