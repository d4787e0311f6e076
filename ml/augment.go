package ml

import (
	"math/rand/v2"
	"strings"
	"unicode"
)

// augment returns a noisy variant of text, the way people really type it: a typo in a word,
// different casing, punctuation dropped or repeated, an emoji added. It teaches the model that
// these changes do not change the intent.
func augment(rng *rand.Rand, text string) string {
	words := strings.Fields(text)
	if len(words) == 0 {
		return text
	}
	switch rng.IntN(6) {
	case 0, 1: // typo in one word
		i := rng.IntN(len(words))
		words[i] = typo(rng, words[i])
	case 2:
		if rng.IntN(2) == 0 {
			return strings.ToLower(text)
		}
		return strings.ToUpper(text)
	case 3: // no punctuation
		return strings.Map(func(r rune) rune {
			if r == '.' || r == ',' || r == '!' || r == ';' {
				return -1
			}
			return r
		}, text)
	case 4: // drop a word from a longer text
		if len(words) > 4 {
			i := rng.IntN(len(words))
			words = append(words[:i], words[i+1:]...)
		}
	case 5:
		if len(words) > 1 {
			words = append(words, neutralEmoji[rng.IntN(len(neutralEmoji))])
		}
	}
	return strings.Join(words, " ")
}

var neutralEmoji = []string{"😊", "🙂", "😀", "✨", "😅", "!!", "..."}

func typo(rng *rand.Rand, w string) string {
	r := []rune(w)
	if len(r) < 4 || !unicode.IsLetter(r[1]) {
		return w
	}
	i := 1 + rng.IntN(len(r)-2)
	switch rng.IntN(4) {
	case 0: // swap
		r[i], r[i+1] = r[i+1], r[i]
	case 1: // drop
		r = append(r[:i], r[i+1:]...)
	case 2: // double
		r = append(r[:i+1], r[i:]...)
	default: // neighbour key-ish substitution
		r[i] = rune('a' + rng.IntN(26))
	}
	return string(r)
}

// dropFeatures removes each feature with probability p, keeping at least one.
func dropFeatures(rng *rand.Rand, b bag, p float64) bag {
	out := bag{idx: make([]int64, 0, len(b.idx))}
	keep := func(i int) {
		out.idx = append(out.idx, b.idx[i])
		for k := range b.ends {
			if i < b.ends[k] {
				out.ends[k]++
			}
		}
	}
	for i := range b.idx {
		if rng.Float64() >= p {
			keep(i)
		}
	}
	if len(out.idx) == 0 {
		keep(rng.IntN(len(b.idx)))
	}
	return out
}
