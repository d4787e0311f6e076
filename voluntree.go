// Package voluntree holds the domain types of Voluntree: intents, predictions and the
// interfaces that adapters (ml, actors, httpapi) implement or consume. It imports no adapter.
package voluntree

import (
	"context"
	"fmt"
)

// Intent is the primary intent of one message (a comment, a Messenger text or a postback).
type Intent string

// The six intents, exactly. The order of Intents() is the order of a model's output columns.
const (
	// IntentInterested: wants to volunteer, sign up, help, or confirms.
	IntentInterested Intent = "interested"
	// IntentQuestion: asks about the event without committing.
	IntentQuestion Intent = "question"
	// IntentDonate: wants to give money or goods, or asks how.
	IntentDonate Intent = "donate"
	// IntentDecline: can't come, withdraws, or asks to stop messages.
	IntentDecline Intent = "decline"
	// IntentThanks: gratitude or praise only.
	IntentThanks Intent = "thanks"
	// IntentOther: greetings, tags, spam, off-topic, emoji-only.
	IntentOther Intent = "other"
)

// Intents returns the six intents in model column order.
func Intents() []Intent {
	return []Intent{IntentInterested, IntentQuestion, IntentDonate, IntentDecline, IntentThanks, IntentOther}
}

// ParseIntent returns the Intent named s, or an EINVALID error.
func ParseIntent(s string) (Intent, error) {
	for _, in := range Intents() {
		if string(in) == s {
			return in, nil
		}
	}
	return "", Errorf(EINVALID, "unknown intent %q", s)
}

// Prediction is the classification of one text.
type Prediction struct {
	Intent     Intent
	Confidence float32            // probability of Intent
	Scores     map[Intent]float32 // probability of every intent; sums to 1
}

// Classifier classifies texts. Results are in the order of texts.
type Classifier interface {
	Classify(ctx context.Context, texts []string) ([]Prediction, error)
}

// Limits of one classify request, shared by the HTTP API and the CLI.
const (
	MaxClassifyTexts = 256
	MaxTextRunes     = 5000
)

// ValidateTexts checks a classify request against the limits above.
func ValidateTexts(texts []string) error {
	if len(texts) == 0 {
		return Errorf(EINVALID, "texts: at least one text is required")
	}
	if len(texts) > MaxClassifyTexts {
		return Errorf(EINVALID, "texts: at most %d texts per request, got %d", MaxClassifyTexts, len(texts))
	}
	for i, t := range texts {
		if n := len([]rune(t)); n > MaxTextRunes {
			return Errorf(EINVALID, "texts[%d]: at most %d characters, got %d", i, MaxTextRunes, n)
		}
	}
	return nil
}

// String implements fmt.Stringer.
func (p Prediction) String() string {
	return fmt.Sprintf("%s (%.2f)", p.Intent, p.Confidence)
}
