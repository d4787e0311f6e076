package ml

import (
	"slices"
	"strings"
	"testing"
)

func overlap(a, b []int64) float64 {
	set := make(map[int64]bool, len(a))
	for _, x := range a {
		set[x] = true
	}
	common := 0
	for _, x := range b {
		if set[x] {
			common++
		}
	}
	return float64(common) / float64(max(len(a), len(b)))
}

func TestFeaturizeNormalisesWhatDoesNotChangeMeaning(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	same := []struct{ a, b string }{
		{"Count me in!", "COUNT ME IN!"},
		{"sooooo happy", "soooooooooo happy"},
		{"I can't come", "I cant come"},
		{"I can’t come", "I can't come"},
		{"count me in ❤️", "count me in ❤"},       // variation selector
		{"thanks 👍🏽", "thanks 👍"},                 // skin tone
		{"what time??", "what time?"},             // repeated marks
		{"hi   there", "hi there"},                // whitespace
		{"see https://x.co/a", "see www.y.org/b"}, // any URL
		{"@Maria Lopez", "@Tom Lopez"},            // any mention
	}
	for _, tc := range same {
		if fa, fb := cfg.Featurize(tc.a), cfg.Featurize(tc.b); !slices.Equal(fa, fb) {
			t.Errorf("Featurize(%q) != Featurize(%q)", tc.a, tc.b)
		}
	}
}

func TestFeaturizeKeepsWhatChangesMeaning(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	differ := []struct{ a, b string }{
		{"coming", "not coming"},
		{"what time", "what time?"},
		{"count me in", "count me out"},
		{"❤️", "😂"},
	}
	for _, tc := range differ {
		if slices.Equal(cfg.Featurize(tc.a), cfg.Featurize(tc.b)) {
			t.Errorf("Featurize(%q) == Featurize(%q), want different features", tc.a, tc.b)
		}
	}
}

func TestFeaturizeTyposShareMostFeatures(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	pairs := []struct{ a, b string }{
		{"volunteer", "voluntear"},
		{"definitely", "definately"},
		{"donation", "donaton"},
	}
	for _, p := range pairs {
		fa, fb := cfg.Featurize(p.a), cfg.Featurize(p.b)
		if o := overlap(fa, fb); o < 0.35 {
			t.Errorf("%q vs %q share %.2f of features, want >= 0.35", p.a, p.b, o)
		}
		if o := overlap(fa, cfg.Featurize("banana")); o > 0.2 {
			t.Errorf("%q vs unrelated word share %.2f", p.a, o)
		}
	}
}

func TestFeaturizeBoundsAndEdgeCases(t *testing.T) {
	cfg := DefaultFeaturizerConfig()
	cases := map[string]string{
		"empty":        "",
		"spaces":       "   \t ",
		"emoji only":   "🔥🔥🔥",
		"symbols":      "...---...",
		"one letter":   "k",
		"non-latin":    "Ναι, θα έρθω! 我来帮忙",
		"invalid utf8": "ok \xff\xfe",
		"very long":    strings.Repeat("I would love to help with the beach cleanup next weekend ", 200),
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			f := cfg.Featurize(text)
			if len(f) == 0 {
				t.Fatal("no features: every text must yield at least a shape feature")
			}
			if len(f) > cfg.MaxFeatures {
				t.Fatalf("%d features, cap is %d", len(f), cfg.MaxFeatures)
			}
			seen := map[int64]bool{}
			for _, x := range f {
				if x < 1 || x >= int64(cfg.Buckets) {
					t.Fatalf("index %d outside [1, %d)", x, cfg.Buckets)
				}
				if seen[x] {
					t.Fatalf("duplicate index %d", x)
				}
				seen[x] = true
			}
			if !slices.Equal(f, cfg.Featurize(text)) {
				t.Fatal("not deterministic")
			}
		})
	}
	if a, b := cfg.Featurize("🔥🔥"), cfg.Featurize("fire fire"); slices.Equal(a, b) {
		t.Fatal("emoji-only text indistinguishable from words")
	}
}

func TestFeaturizerConfigValidate(t *testing.T) {
	bad := []FeaturizerConfig{
		{Buckets: 1, CharMin: 2, CharMax: 5, MaxFeatures: 10},
		{Buckets: 100, CharMin: 3, CharMax: 2, MaxFeatures: 10},
		{Buckets: 100, CharMin: 2, CharMax: 5, MaxFeatures: 0},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := DefaultFeaturizerConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The dedupe table starts small for short texts and must grow, whatever the n-gram settings.
func TestFeaturizeManyShortWordsWithWideNgramRange(t *testing.T) {
	cfg := FeaturizerConfig{Buckets: 1 << 20, CharMin: 1, CharMax: 8, MaxFeatures: 100000}
	var b strings.Builder
	for i := 0; i < 3000; i++ {
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + " ")
	}
	f := cfg.Featurize(b.String())
	seen := map[int64]bool{}
	for _, x := range f {
		if seen[x] {
			t.Fatalf("duplicate feature %d", x)
		}
		seen[x] = true
	}
	if len(f) < 676 {
		t.Fatalf("%d features for 676 distinct words", len(f))
	}
}
