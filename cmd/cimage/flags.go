package main

import (
	"flag"
	"fmt"
	"strings"
)

// flagAliases are the cmdlets' parameter names that are not a flag's name
// once written in lower case without dashes (Save-ContainerImage 0.5 took
// -Destination for -Path).
var flagAliases = map[string]string{
	"destination": "path",
}

// flagKey is a flag name as it is compared with the cmdlets' parameters:
// lower case, without dashes, so that -RequiredVersion, -requiredversion
// and --required-version are one flag.
func flagKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "-", "")
}

// splitFlag splits a flag argument into its name and, for -name=value,
// its value. ok is false for an argument that is not a flag: "-", a
// negative number, or anything after "--".
func splitFlag(arg string) (name, value string, hasValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", "", false, false
	}
	name = strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	if name == "" || name[0] == '-' || name[0] == '=' || (name[0] >= '0' && name[0] <= '9') {
		return "", "", false, false
	}
	name, value, hasValue = strings.Cut(name, "=")
	return name, value, hasValue, true
}

// powerShellArgs rewrites the cmdlets' spelling of parameters into the
// flags of f: -RequiredVersion becomes --required-version, -WhatIf
// --what-if, and -Name X the positional X when the command has no --name
// flag. Arguments after "--" and flags that f defines are left alone;
// unknown ones too, for Parse to refuse with a suggestion.
func powerShellArgs(f *flag.FlagSet, args []string) []string {
	keys := map[string]string{}
	f.VisitAll(func(fl *flag.Flag) { keys[flagKey(fl.Name)] = fl.Name })
	out := make([]string, 0, len(args))
	for i, arg := range args {
		if arg == "--" {
			return append(out, args[i:]...)
		}
		name, value, hasValue, ok := splitFlag(arg)
		if !ok || f.Lookup(name) != nil {
			out = append(out, arg)
			continue
		}
		key := flagKey(name)
		if alias, ok := flagAliases[key]; ok {
			key = flagKey(alias)
		}
		switch real, found := keys[key]; {
		case found && hasValue:
			out = append(out, "--"+real+"="+value)
		case found:
			out = append(out, "--"+real)
		case key == "name" && hasValue:
			out = append(out, value)
		case key == "name":
			// -Name X: X is the positional NAME.
		default:
			out = append(out, arg)
		}
	}
	return out
}

// suggestFlag adds the nearest flag of f to the error of an undefined one,
// as git does: "flag provided but not defined: -forse; did you mean
// --force?".
func suggestFlag(f *flag.FlagSet, err error) error {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return err
	}
	name := strings.TrimPrefix(msg, prefix)
	best, bestDist := "", 0
	f.VisitAll(func(fl *flag.Flag) {
		if d := editDistance(flagKey(name), flagKey(fl.Name)); best == "" || d < bestDist {
			best, bestDist = fl.Name, d
		}
	})
	// A guess farther than a third of the name is noise.
	if best == "" || bestDist > max(2, len(name)/3) {
		return fmt.Errorf("unknown flag --%s; see -h for the flags", name)
	}
	return fmt.Errorf("unknown flag --%s; did you mean --%s?", name, best)
}

// nearestCommand is the command nearest to name, as suggestFlag finds
// a flag, or "" when none is near; the cmdlets' verbs count too
// ("Install-ContainerImage" is install).
func nearestCommand(name string) string {
	key := strings.ToLower(name)
	if verb, _, ok := strings.Cut(key, "-"); ok {
		key = verb
	}
	aliases := map[string]string{"get": "images", "uninstall": "remove", "register": "source", "unregister": "source"}
	if c, ok := aliases[key]; ok {
		return c
	}
	best, bestDist := "", 0
	for _, c := range commands() {
		if d := editDistance(key, c.name); best == "" || d < bestDist {
			best, bestDist = c.name, d
		}
	}
	if bestDist > max(2, len(key)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
