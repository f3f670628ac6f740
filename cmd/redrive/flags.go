package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// stringList is a repeatable flag whose values may also be comma-separated.
type stringList []string

// String implements flag.Value.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value: each use adds its comma-separated values.
func (l *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// ageValue is a duration flag that also takes days and weeks: 7d, 2w, 1d12h.
type ageValue time.Duration

var dayUnits = regexp.MustCompile(`(\d+(?:\.\d+)?)([dw])`)

// String implements flag.Value.
func (v *ageValue) String() string { return time.Duration(*v).String() }

// Set implements flag.Value.
func (v *ageValue) Set(s string) error {
	var convErr error
	expanded := dayUnits.ReplaceAllStringFunc(s, func(m string) string {
		parts := dayUnits.FindStringSubmatch(m)
		n, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			convErr = err
			return m
		}
		hours := n * 24
		if parts[2] == "w" {
			hours *= 7
		}
		return strconv.FormatFloat(hours, 'f', -1, 64) + "h"
	})
	d, err := time.ParseDuration(expanded)
	if convErr != nil || err != nil || d <= 0 {
		return fmt.Errorf("%q is not an age like 90s, 30m, 12h or 7d", s)
	}
	*v = ageValue(d)
	return nil
}

// retainValue is the --retain flag: an age like --older-than's, where 0
// keeps nothing.
type retainValue struct{ d time.Duration }

// String implements flag.Value.
func (v *retainValue) String() string { return v.d.String() }

// Set implements flag.Value.
func (v *retainValue) Set(s string) error {
	if s == "0" {
		v.d = 0
		return nil
	}
	var age ageValue
	if err := age.Set(s); err != nil {
		return fmt.Errorf("%q is not an age like 0, 90s, 30m, 12h or 7d", s)
	}
	v.d = time.Duration(age)
	return nil
}

// window is the retention to ask the admin for: 0 keeps nothing, which the
// admin spells as the smallest window.
func (v retainValue) window() time.Duration {
	return max(v.d, time.Millisecond)
}
