package httpapi

import (
	"regexp"
	"strconv"

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

// Pushing a model through the API, in chunks (a model file is larger than a request body may
// be): POST /models/uploads declares the file, PUT /models/uploads/:id/chunks/:n sends each
// chunk (raw bytes, in any order, again after a failure), GET /models/uploads/:id says which
// chunks arrived, POST /models/uploads/:id/complete checks the file and pushes it.

type uploadInput struct {
	Tag    string `json:"tag"`
	Note   string `json:"note"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// parseUpload reads and checks an upload's declaration.
func parseUpload(body []byte) (voluntree.ModelUpload, error) {
	var in uploadInput
	if err := decodeJSON(body, &in); err != nil {
		return voluntree.ModelUpload{}, err
	}
	u := voluntree.ModelUpload{Tag: in.Tag, Note: in.Note, Size: in.Size, SHA256: in.SHA256}
	return u, redisstore.ValidateModelUpload(u)
}

var uploadIDPattern = regexp.MustCompile(`^mu_[0-9a-f]{20}$`)

// uploadRef reads the :id (and :n, when chunk) of an upload's path.
func uploadRef(id, n string, chunk bool) (string, int, error) {
	if !uploadIDPattern.MatchString(id) {
		return "", 0, voluntree.Errorf(voluntree.ENOTFOUND, "no model upload has this id")
	}
	if !chunk {
		return id, 0, nil
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i > redisstore.MaxModelSize/redisstore.ModelChunkSize || strconv.Itoa(i) != n {
		return "", 0, voluntree.FieldErrorf("chunk", "chunk: want its number, 0 for the first, got %.20q", n)
	}
	return id, i, nil
}

// createModelUpload: POST /api/v1/models/uploads {tag, size, sha256, note} → 201 the upload.
func (s *Server) createModelUpload(c *fiber.Ctx) error {
	u, err := parseUpload(c.Body())
	if err != nil {
		return err
	}
	u, err = s.cfg.Models.CreateUpload(c.UserContext(), u)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("model upload started", "action", "model_upload", "upload", u.ID, "tag", u.Tag, "size", u.Size)
	return c.Status(fiber.StatusCreated).JSON(u)
}

// modelUpload: GET /api/v1/models/uploads/:id → the upload, with the chunks received.
func (s *Server) modelUpload(c *fiber.Ctx) error {
	id, _, err := uploadRef(c.Params("id"), "", false)
	if err != nil {
		return err
	}
	u, err := s.cfg.Models.Upload(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// putModelUploadChunk: PUT /api/v1/models/uploads/:id/chunks/:n (raw bytes) → the upload.
func (s *Server) putModelUploadChunk(c *fiber.Ctx) error {
	id, n, err := uploadRef(c.Params("id"), c.Params("n"), true)
	if err != nil {
		return err
	}
	u, err := s.cfg.Models.PutUploadChunk(c.UserContext(), id, n, c.Body())
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// completeModelUpload: POST /api/v1/models/uploads/:id/complete → 201 the pushed version, or
// the reason it was refused (missing or damaged chunks, a file that fails to load or scores
// below the floor).
func (s *Server) completeModelUpload(c *fiber.Ctx) error {
	id, _, err := uploadRef(c.Params("id"), "", false)
	if err != nil {
		return err
	}
	v, err := s.cfg.Models.CompleteUpload(c.UserContext(), id)
	if err != nil {
		return err
	}
	s.cfg.Logger.Info("model pushed", "action", "model_push", "upload", id, "tag", v.Tag, "sha256", v.SHA256, "size", v.Size)
	return c.Status(fiber.StatusCreated).JSON(v)
}
