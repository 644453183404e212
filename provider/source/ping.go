package source

import (
	"context"
	"fmt"
	"net/http"
)

// Ping asks the registry's base endpoint (GET /v2/) whether it answers. Any
// answer below 500 counts, a 401 included: the registry is there, and
// credentials are the business of the requests that need them. A transport
// error or a 5xx is of class Unavailable.
func (c *Client) Ping(ctx context.Context) error {
	req, err := c.newRequest(ctx, http.MethodGet, c.endpoint("/v2/", nil), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("source %s: %w", c.name, transportError(ctx, err))
	}
	defer drain(resp)
	if resp.StatusCode >= 500 {
		return fmt.Errorf("source %s: %w", c.name, statusError(resp))
	}
	return nil
}
