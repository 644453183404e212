package catalog

import "github.com/containerprovider/containerprovider/catalog/publish"

// The registry is what publish writes to.
var _ publish.Target = (*Registry)(nil)
