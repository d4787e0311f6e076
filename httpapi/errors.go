package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/voluntree/voluntree"
)

// statusOf maps domain error codes to HTTP statuses: the one table for the whole API.
var statusOf = map[string]int{
	voluntree.EINVALID:      http.StatusBadRequest,
	voluntree.ENOTFOUND:     http.StatusNotFound,
	voluntree.ECONFLICT:     http.StatusConflict,
	voluntree.EUNAUTHORIZED: http.StatusUnauthorized,
	voluntree.EFORBIDDEN:    http.StatusForbidden,
	voluntree.ERATELIMITED:  http.StatusTooManyRequests,
	voluntree.EOVERLOADED:   http.StatusServiceUnavailable,
	voluntree.EUNAVAILABLE:  http.StatusServiceUnavailable,
	voluntree.EINTERNAL:     http.StatusInternalServerError,
}

// errorBody is every error response: {"error": "..."}, with "field" naming the input field
// at fault when a validation error is about one (e.g. "slots[0].end").
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// errorHandler turns any handler error into a JSON error response. Domain errors keep their
// message; Fiber's own (404, 405, 413) keep theirs; anything else is logged and hidden.
func errorHandler(logger *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var fe *fiber.Error
		status, msg := http.StatusInternalServerError, "internal error"
		switch {
		case errors.As(err, &fe):
			status, msg = fe.Code, fe.Message
		case errors.Is(err, context.DeadlineExceeded):
			status, msg = http.StatusGatewayTimeout, "request timed out"
		case voluntree.ErrorCode(err) != voluntree.EINTERNAL:
			msg = voluntree.ErrorMessage(err)
			if st, ok := statusOf[voluntree.ErrorCode(err)]; ok {
				status = st
			}
		}
		switch voluntree.ErrorCode(err) {
		case voluntree.EOVERLOADED, voluntree.ERATELIMITED:
			secs := int64((voluntree.ErrorRetryAfter(err) + time.Second - 1) / time.Second)
			c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(max(secs, 1), 10))
		case voluntree.EUNAUTHORIZED:
			c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
		}
		if status >= 500 {
			logger.Error("request failed", "action", "http_error", "method", c.Method(), "path", c.Path(), "status", status, "error", err)
		}
		return c.Status(status).JSON(errorBody{Error: msg, Field: voluntree.ErrorField(err)})
	}
}
