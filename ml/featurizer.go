package ml

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
)

// FeaturizerConfig describes how a text becomes a bag of hashed feature indices. It is stored
// in every model file, so a model is always served with the featurizer it was trained with.
type FeaturizerConfig struct {
	Buckets     int `json:"buckets"`      // hash space; index 0 is reserved for padding
	CharMin     int `json:"char_min"`     // shortest character n-gram (within "<word>")
	CharMax     int `json:"char_max"`     // longest character n-gram
	MaxFeatures int `json:"max_features"` // cap per text, first occurrences win
}

// Default featurizer settings.
const (
	DefaultBuckets     = 1 << 16
	DefaultCharMin     = 3
	DefaultCharMax     = 4
	DefaultMaxFeatures = 1024
)

// DefaultFeaturizerConfig returns the settings the shipped model and TorchScript models use.
func DefaultFeaturizerConfig() FeaturizerConfig {
	return FeaturizerConfig{Buckets: DefaultBuckets, CharMin: DefaultCharMin, CharMax: DefaultCharMax, MaxFeatures: DefaultMaxFeatures}
}

// Validate reports a configuration that cannot featurize.
func (c FeaturizerConfig) Validate() error {
	switch {
	case c.Buckets < 2:
		return fmt.Errorf("featurizer: buckets must be at least 2, got %d", c.Buckets)
	case c.CharMin < 1 || c.CharMax < c.CharMin:
		return fmt.Errorf("featurizer: char n-gram range [%d, %d] is empty", c.CharMin, c.CharMax)
	case c.MaxFeatures < 1:
		return fmt.Errorf("featurizer: max_features must be positive, got %d", c.MaxFeatures)
	}
	return nil
}

// Featurize turns a text into at most MaxFeatures distinct feature indices in [1, Buckets).
// The features are:
//   - w:token    every token (words, numbers, each emoji, "?" and "!")
//   - b:t1 t2    token bigrams, so "not coming" differs from "coming"
//   - c:gram     character n-grams of each word inside "<" ">" (typos share most grams)
//   - s:...      shape: token-count bucket, whole text when it is 1-3 tokens, emoji-only,
//     has-URL, has-mention, has-digits
//
// Normalisation makes casing, elongation ("sooo"), curly apostrophes and inner apostrophes
// ("can't" = "cant") irrelevant. An empty or symbol-only text still yields shape features.
func (c FeaturizerConfig) Featurize(text string) []int64 {
	f, _ := c.FeaturizeBlocks(text)
	return f
}

// Feature blocks, in the order Featurize emits them.
const (
	BlockWords = iota // tokens, bigrams, shape
	BlockChars        // character n-grams of words
	blocks
)

// FeaturizeBlocks is Featurize that also says where each block of features ends: block b is
// feats[ends[b-1]:ends[b]] (from 0 for the first).
func (c FeaturizerConfig) FeaturizeBlocks(text string) (feats []int64, ends [blocks]int) {
	toks := tokenize(text)
	f := newFeatureSet(c, len(text))
	defer f.release()
	f.add("s:n", tokenCountBucket(len(toks.words)))
	if len(toks.words) <= 3 {
		f.add("s:all", strings.Join(toks.words, " "))
	}
	if toks.emojiOnly() {
		f.add("s:emoji-only", "")
	}
	for _, flag := range toks.flags {
		f.add("s:", flag)
	}
	for i, w := range toks.words {
		f.add("w:", w)
		if i > 0 {
			f.add("b:", toks.words[i-1]+" "+w)
		}
	}
	ends[BlockWords] = len(f.out)
	var starts []int // byte offset of each rune of "<word>", plus the end
	for _, w := range toks.words {
		if !isWord(w) {
			continue
		}
		b := "<" + w + ">"
		starts = starts[:0]
		for i := range b {
			starts = append(starts, i)
		}
		starts = append(starts, len(b))
		runes := len(starts) - 1
		for n := c.CharMin; n <= c.CharMax; n++ {
			for i := 0; i+n <= runes; i++ {
				f.add("c:", b[starts[i]:starts[i+n]])
			}
		}
	}
	ends[BlockChars] = len(f.out)
	return f.out, ends
}

// featureSet collects distinct feature indices in first-seen order. Hashing is FNV-1a 64 of
// prefix+s computed in place, and the dedupe set is an open-addressing table: featurizing is
// on the request path, so it allocates little.
type featureSet struct {
	cfg   FeaturizerConfig
	slots []int64 // 0 = empty; sized to a power of two at least twice MaxFeatures
	out   []int64
}

// newFeatureSet sizes the dedupe table from the text's length (about as many features as
// n-gram lengths per byte), so a short comment does not pay for a table sized for
// MaxFeatures. The estimate only sets the start: the table grows when half full.
func newFeatureSet(cfg FeaturizerConfig, textBytes int) *featureSet {
	guess := min(cfg.MaxFeatures, (cfg.CharMax-cfg.CharMin+3)*(textBytes+2)+8)
	n := 16
	for n < 2*guess {
		n <<= 1
	}
	return &featureSet{cfg: cfg, slots: takeSlots(n), out: make([]int64, 0, guess)}
}

// The dedupe tables are scratch space, reused through a pool: featurizing every message of a
// busy pipeline allocated a fresh table for each (a tenth of the node's allocations).
var slotPool sync.Pool

// maxPooledSlots is the largest table kept for reuse (512 KiB); longer texts allocate theirs.
const maxPooledSlots = 1 << 16

// takeSlots returns a zeroed table of n slots.
func takeSlots(n int) []int64 {
	if p, ok := slotPool.Get().(*[]int64); ok {
		if s := *p; cap(s) >= n {
			s = s[:n]
			clear(s)
			return s
		}
		slotPool.Put(p)
	}
	return make([]int64, n)
}

// release hands the table back for reuse; out, the result, stays the caller's.
func (f *featureSet) release() {
	if s := f.slots; cap(s) <= maxPooledSlots {
		slotPool.Put(&s)
	}
	f.slots = nil
}

// grow doubles the table and reinserts what it holds.
func (f *featureSet) grow() {
	n := 2 * len(f.slots)
	f.release()
	f.slots = takeSlots(n)
	mask := len(f.slots) - 1
	for _, idx := range f.out {
		j := slotOf(idx, mask)
		for f.slots[j] != 0 {
			j = (j + 1) & mask
		}
		f.slots[j] = idx
	}
}

func slotOf(idx int64, mask int) int { return int(uint64(idx)*0x9E3779B97F4A7C15>>32) & mask }

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func (f *featureSet) add(prefix, s string) {
	if len(f.out) >= f.cfg.MaxFeatures {
		return
	}
	h := uint64(fnvOffset64)
	for i := 0; i < len(prefix); i++ {
		h = (h ^ uint64(prefix[i])) * fnvPrime64
	}
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime64
	}
	idx := int64(1 + h%uint64(f.cfg.Buckets-1))
	if 2*(len(f.out)+1) > len(f.slots) {
		f.grow() // keeps the table at most half full, so probing always ends
	}
	mask := len(f.slots) - 1
	for j := slotOf(idx, mask); ; j = (j + 1) & mask {
		switch f.slots[j] {
		case idx:
			return
		case 0:
			f.slots[j] = idx
			f.out = append(f.out, idx)
			return
		}
	}
}

type tokens struct {
	words []string // normalised tokens in order
	flags []string // "url", "mention", "digits"
	emoji int
}

func (t tokens) emojiOnly() bool { return t.emoji > 0 && t.emoji == len(t.words) }

func tokenCountBucket(n int) string {
	switch {
	case n == 0:
		return "0"
	case n <= 3:
		return fmt.Sprint(n)
	case n <= 6:
		return "4-6"
	case n <= 15:
		return "7-15"
	case n <= 40:
		return "16-40"
	default:
		return "41+"
	}
}

func isWord(s string) bool {
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return true
		}
	}
	return false
}

func isEmoji(r rune) bool {
	return r >= 0x1F000 || (r >= 0x2600 && r <= 0x27BF) || r == 0x2764 || r == 0x2B50 || unicode.Is(unicode.So, r)
}

// tokenize splits a text into lower-case word tokens, single emoji and "?"/"!" marks.
func tokenize(text string) tokens {
	var t tokens
	flag := func(f string) {
		for _, x := range t.flags {
			if x == f {
				return
			}
		}
		t.flags = append(t.flags, f)
	}
	for _, field := range strings.Fields(text) {
		lf := strings.ToLower(field)
		switch {
		case strings.HasPrefix(lf, "http://") || strings.HasPrefix(lf, "https://") || strings.HasPrefix(lf, "www."):
			flag("url")
			t.words = append(t.words, "<url>")
			continue
		case strings.HasPrefix(lf, "@") && len(lf) > 1:
			flag("mention")
			t.words = append(t.words, "<mention>")
			continue
		}
		var word []rune
		flush := func() {
			if len(word) > 0 {
				t.words = append(t.words, squeeze(word))
				word = word[:0]
			}
		}
		rs := []rune(lf)
		for i, r := range rs {
			switch {
			case r == 0xFE0F || r == 0x200D || (r >= 0x1F3FB && r <= 0x1F3FF):
				// variation selectors (category Mn, so before the letter case), zero-width
				// joiners and skin tones belong to the emoji before them
			case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
				if unicode.IsDigit(r) {
					flag("digits")
				}
				word = append(word, r)
			case (r == '\'' || r == '’' || r == '`') && len(word) > 0 && i+1 < len(rs) && unicode.IsLetter(rs[i+1]):
				// inner apostrophe: "can't" -> "cant"
			case r == '?' || r == '!':
				flush()
				if n := len(t.words); n == 0 || t.words[n-1] != string(r) {
					t.words = append(t.words, string(r))
				}
			case isEmoji(r):
				flush()
				t.words = append(t.words, string(r))
				t.emoji++
			default:
				flush()
			}
		}
		flush()
	}
	return t
}

// squeeze limits runs of one letter to two: "soooo" -> "soo", "!!!" is handled by tokenize.
func squeeze(rs []rune) string {
	out := make([]rune, 0, len(rs))
	for i, r := range rs {
		if i >= 2 && r == rs[i-1] && r == rs[i-2] {
			continue
		}
		out = append(out, r)
	}
	return string(out)
}
