package kubeapi

import (
	"errors"
	"fmt"
	"net/http"
)

// StatusError is a request the API server refused: its HTTP code and the
// reason and message of its Status object.
type StatusError struct {
	Method, Path string
	Code         int
	Reason       string
	Message      string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("kubernetes %s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, e.Message)
}

// IsConflict reports a failed resourceVersion precondition (409 Conflict) or the
// object already exists (409 AlreadyExists).
func IsConflict(err error) bool { return hasCode(err, http.StatusConflict) }

// IsNotFound reports that the object does not exist.
func IsNotFound(err error) bool { return hasCode(err, http.StatusNotFound) }

// IsForbidden reports a refusal for the client's rights (403 Forbidden).
func IsForbidden(err error) bool { return hasCode(err, http.StatusForbidden) }

func hasCode(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
