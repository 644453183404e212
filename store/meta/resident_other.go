//go:build !linux

package meta

import "errors"

const canTrim = false

func (db *DB) trim() error { return nil }

func fileResident() (int64, error) { return 0, errors.ErrUnsupported }
