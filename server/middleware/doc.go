// Package middleware holds the HTTP plumbing that catalogd and providerd
// share: a request id and a logrus entry per request, one log line when the
// request ends, panic recovery, body size limits, and an http.Server with
// the project's timeouts.
//
// The usual chain, outermost first, is
//
//	middleware.Logging(logger, middleware.Recover(onPanic, handler))
//
// so that a recovered panic still ends in the request's one log line with
// status 500.
package middleware
