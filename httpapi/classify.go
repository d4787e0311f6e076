package httpapi

import (
	"context"
	"encoding/json"

	"github.com/gofiber/fiber/v2"
	"github.com/voluntree/voluntree"
)

type classifyRequest struct {
	Texts *[]string `json:"texts"`
}

type classifyResult struct {
	Intent     voluntree.Intent             `json:"intent"`
	Confidence float32                      `json:"confidence"`
	Scores     map[voluntree.Intent]float32 `json:"scores"`
}

type classifyResponse struct {
	Results []classifyResult `json:"results"`
}

// classify handles POST /api/v1/classify: {"texts": [...]} -> {"results": [...]}, through the
// batching actor. 1-256 texts of at most 5,000 characters each, in a body of at most 1 MiB;
// each client may classify ClassifyRate texts a second.
func (s *Server) classify(c *fiber.Ctx) error {
	texts, err := parseClassifyBody(c.Body())
	if err != nil {
		return err
	}
	if s.classifyLimit != nil {
		if ok, wait := s.classifyLimit.take(s.clientKey(c), float64(len(texts))); !ok {
			e := voluntree.Errorf(voluntree.ERATELIMITED, "too many texts classified from this address: at most %g a second; retry later", s.cfg.ClassifyRate)
			e.RetryAfter = wait
			return e
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	preds, err := s.cfg.Classifier.Classify(ctx, texts)
	if err != nil {
		return err
	}
	resp := classifyResponse{Results: make([]classifyResult, len(preds))}
	for i, p := range preds {
		resp.Results[i] = classifyResult{Intent: p.Intent, Confidence: p.Confidence, Scores: p.Scores}
	}
	return c.JSON(resp)
}

// parseClassifyBody reads and validates a classify request body: the texts, or an EINVALID
// error saying what is wrong.
func parseClassifyBody(body []byte) ([]string, error) {
	var req classifyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, voluntree.Errorf(voluntree.EINVALID, "body must be a JSON object {\"texts\": [strings]}: %v", err)
	}
	if req.Texts == nil {
		return nil, voluntree.Errorf(voluntree.EINVALID, "texts: required")
	}
	if err := voluntree.ValidateTexts(*req.Texts); err != nil {
		return nil, err
	}
	return *req.Texts, nil
}
