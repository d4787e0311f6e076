package httpapi

import (
	"github.com/gofiber/fiber/v2"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/redisstore"
)

// ModelRegistry is the model registry as the admin API uses it (voluntree.ModelRegistry):
// Promote checks the version (it loads and scores on the shipped validation set) before
// promoting it.
type ModelRegistry = voluntree.ModelRegistry

// operatorOnly lets through the owners of the operator organization (requireRole has checked
// the role): the model registry serves every organization, so no other may change it.
func (s *Server) operatorOnly(h fiber.Handler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if s.cfg.OperatorOrg == "" || principal(c).OrgID != s.cfg.OperatorOrg {
			return voluntree.Errorf(voluntree.EFORBIDDEN, "the model registry is managed by the owners of the operator organization (VOLUNTREE_OPERATOR_ORG)")
		}
		if s.cfg.Models == nil {
			return voluntree.Errorf(voluntree.EUNAVAILABLE, "the model registry is not available on this node")
		}
		return h(c)
	}
}

type modelsResponse struct {
	Versions []voluntree.ModelVersion `json:"versions"`
	Nodes    []voluntree.ModelNode    `json:"nodes"`
}

// listModels: GET /api/v1/models → the versions, newest first, and the version each node
// serves.
func (s *Server) listModels(c *fiber.Ctx) error {
	vs, err := s.cfg.Models.Versions(c.UserContext())
	if err != nil {
		return err
	}
	nodes, err := s.cfg.Models.Nodes(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(modelsResponse{Versions: vs, Nodes: nodes})
}

// promoteModel: POST /api/v1/models/:tag/promote → {"promoted": tag, "previous": tag}.
func (s *Server) promoteModel(c *fiber.Ctx) error {
	tag := c.Params("tag")
	if err := redisstore.ValidModelTag(tag); err != nil {
		return err
	}
	prev, err := s.cfg.Models.Promote(c.UserContext(), tag)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"promoted": tag, "previous": prev})
}

// rollbackModel: POST /api/v1/models/rollback → {"promoted": tag}.
func (s *Server) rollbackModel(c *fiber.Ctx) error {
	tag, err := s.cfg.Models.Rollback(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"promoted": tag})
}

// removeModel: DELETE /api/v1/models/:tag → 204.
func (s *Server) removeModel(c *fiber.Ctx) error {
	tag := c.Params("tag")
	if err := redisstore.ValidModelTag(tag); err != nil {
		return err
	}
	if err := s.cfg.Models.Remove(c.UserContext(), tag); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
