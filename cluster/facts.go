package cluster

import (
	"math"
	"strings"
	"unicode"
)

// Featurizer turns a text into hashed features: the intent model's own (ml.FeaturizerConfig's
// Featurize), which the conversation grain also uses to match a question to a signup's facts.
type Featurizer func(text string) []int64

// minFactSimilarity is the cosine similarity under which no fact answers a question: the bot
// says the team will answer, and the admins are told.
const minFactSimilarity = 0.22

// factIndex is a signup's facts, split into sentences, with their features weighted by
// rarity among the facts (a feature every fact has says nothing about which one answers).
type factIndex struct {
	facts []string
	feats []map[int64]bool
	idf   map[int64]float64
	norms []float64
}

func newFactIndex(facts string, fz Featurizer) *factIndex {
	ix := &factIndex{idf: map[int64]float64{}}
	if fz == nil {
		return ix
	}
	df := map[int64]int{}
	for _, s := range splitFacts(facts) {
		fs := featureSet(fz(contentWords(s)))
		ix.facts = append(ix.facts, s)
		ix.feats = append(ix.feats, fs)
		for k := range fs {
			df[k]++
		}
	}
	for k, n := range df {
		ix.idf[k] = math.Log(1 + float64(len(ix.facts))/float64(n))
	}
	for _, fs := range ix.feats {
		ix.norms = append(ix.norms, ix.norm(fs))
	}
	return ix
}

// weight is a feature's weight: its rarity among the facts (features no fact has weigh as
// the rarest would, so that they lower the question's similarity to every fact alike).
func (ix *factIndex) weight(k int64) float64 {
	if w, ok := ix.idf[k]; ok {
		return w
	}
	return math.Log(1 + float64(len(ix.facts)))
}

func (ix *factIndex) norm(fs map[int64]bool) float64 {
	sum := 0.0
	for k := range fs {
		w := ix.weight(k)
		sum += w * w
	}
	return math.Sqrt(sum)
}

// answer returns the fact most similar to question, if it is similar enough.
func (ix *factIndex) answer(question string, fz Featurizer) (string, bool) {
	f, score := ix.best(question, fz)
	if score < minFactSimilarity {
		return "", false
	}
	return f, true
}

// best returns the fact most similar to question and the cosine similarity of their weighted
// features.
func (ix *factIndex) best(question string, fz Featurizer) (string, float64) {
	if len(ix.facts) == 0 || fz == nil {
		return "", 0
	}
	q := featureSet(fz(contentWords(question)))
	qn := ix.norm(q)
	best, bestScore := -1, 0.0
	for i, f := range ix.feats {
		dot := 0.0
		for k := range q {
			if f[k] {
				w := ix.weight(k)
				dot += w * w
			}
		}
		if qn == 0 || ix.norms[i] == 0 {
			continue
		}
		if s := dot / (qn * ix.norms[i]); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return "", 0
	}
	return ix.facts[best], bestScore
}

func featureSet(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if id != 0 {
			m[id] = true
		}
	}
	return m
}

// stopWords are left out before featurizing: they match every question to every fact.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an the is are was were be been am do does did i me my we us our you your
		he she it they them their this that these those there here what which who whom whose when where why how
		can could should would will shall may might must need to of in on at by for with about from into
		and or but if so not no yes any some all there's it's i'm what's where's is there please
		have has had get got go going come coming also just very really ok okay thanks thank hi hello`) {
		stopWords[w] = true
	}
}

// stem strips a common English ending, so that "parking" meets "park" and "gloves" "glove".
func stem(w string) string {
	for _, suf := range []string{"ing", "ed", "es", "s", "e"} {
		if len(w)-len(suf) >= 3 && strings.HasSuffix(w, suf) {
			return w[:len(w)-len(suf)]
		}
	}
	return w
}

// contentWords keeps the words of s that are not stop words, lowercased.
func contentWords(s string) string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		if !stopWords[w] {
			out = append(out, stem(w))
		}
	}
	return strings.Join(out, " ")
}

// splitFacts splits facts into lines and sentences.
func splitFacts(facts string) []string {
	var out []string
	for _, line := range strings.Split(facts, "\n") {
		start := 0
		rs := []rune(line)
		for i, r := range rs {
			end := i == len(rs)-1
			if (r == '.' || r == '!' || r == '?') && (end || unicode.IsSpace(rs[i+1])) || end {
				if s := strings.TrimSpace(string(rs[start : i+1])); s != "" {
					out = append(out, s)
				}
				start = i + 1
			}
		}
	}
	return out
}
