//go:build !unix

package archive

// oNoFollow is 0 where open has no such flag: the Lstat before the open
// refuses a symbolic link.
const oNoFollow = 0
