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
// batching actor. 1-256 texts of at most 5,000 characters each.
func (s *Server) classify(c *fiber.Ctx) error {
	var req classifyRequest
	if err := json.Unmarshal(c.Body(), &req); err != nil {
		return voluntree.Errorf(voluntree.EINVALID, "body must be a JSON object {\"texts\": [strings]}: %v", err)
	}
	if req.Texts == nil {
		return voluntree.Errorf(voluntree.EINVALID, "texts: required")
	}
	if err := voluntree.ValidateTexts(*req.Texts); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	preds, err := s.cfg.Classifier.Classify(ctx, *req.Texts)
	if err != nil {
		return err
	}
	resp := classifyResponse{Results: make([]classifyResult, len(preds))}
	for i, p := range preds {
		resp.Results[i] = classifyResult{Intent: p.Intent, Confidence: p.Confidence, Scores: p.Scores}
	}
	return c.JSON(resp)
}
