package provider

import (
	"net/http"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/provider/source"
)

// defaultSourceFactory makes provider/source clients that share client (a
// client with sane timeouts when nil).
func defaultSourceFactory(client *http.Client) SourceFactory {
	if client == nil {
		client = defaultHTTPClient()
	}
	return func(s api.Source) (Source, error) {
		c, err := source.New(s, source.WithHTTPClient(client))
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
