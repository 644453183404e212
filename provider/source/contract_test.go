package source_test

import (
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/provider/source"
)

// The engine consumes sources through provider.Source. This check lives in
// an external test package: provider imports this package.
var _ provider.Source = (*source.Client)(nil)
