package cli

import (
	"fmt"
	"time"
)

// DurationVar defines a time.Duration flag, written as Go writes durations
// (1m, 30s, 24h), whose default is its variable, when set, else value.
func (f *FlagSet) DurationVar(p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*durationValue)(p), name, usage)
}

// durationValue is a flag.Value of a time.Duration.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: not a duration such as 1m or 30s", s)
	}
	*d = durationValue(v)
	return nil
}
