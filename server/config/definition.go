package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Setting is one environment variable of the server as the settings
// reference shows it.
type Setting struct {
	// Name is the variable.
	Name string
	// Section is the part of the reference it is listed in.
	Section string
	// Default is its value when unset, in Markdown: the typed default as
	// written, "(none)", or a formula over other settings in words.
	Default string
	// Accepts says which values it takes, in Markdown.
	Accepts string
	// Meaning says what it does, in Markdown.
	Meaning string
	// Original is what the original Node server had in its place ("-":
	// nothing of the kind).
	Original string
}

// Settings returns every setting of the server, in the reference's order.
func Settings() []Setting {
	out := make([]Setting, len(definitions))
	for i, d := range definitions {
		out[i] = d.Setting
	}
	return out
}

// definition is a Setting with how it is read: read parses the variable
// into the Config (reporting a bad value through the parser), and check,
// when set, runs once every setting is read, for rules across settings.
type definition struct {
	Setting
	read  func(p *parser, name string, c *Config)
	check func(p *parser, c *Config)
}

// reader is how one kind of value is read, and how the reference shows its
// default and the values it takes.
type reader struct {
	def, accepts string
	read         func(p *parser, name string, c *Config)
}

func def(section, name string, r reader, meaning, original string) definition {
	return definition{
		Setting: Setting{Name: name, Section: section, Default: r.def, Accepts: r.accepts, Meaning: meaning, Original: original},
		read:    r.read,
	}
}

// then adds a check across settings, run once every setting is read.
func (d definition) then(check func(p *parser, c *Config)) definition {
	d.check = check
	return d
}

func code(s string) string { return "`" + s + "`" }

func none(s string) string {
	if s == "" {
		return "(none)"
	}
	return code(s)
}

func str(def string, field func(*Config) *string) reader {
	return reader{def: none(def), accepts: "text", read: func(p *parser, name string, c *Config) {
		*field(c) = p.str(name, def)
	}}
}

func intIn(def, lo, hi int, field func(*Config) *int) reader {
	return intFrom(code(strconv.Itoa(def)), func(*Config) int { return def }, lo, hi, field)
}

// intFrom is a whole number whose default is computed from the settings
// read before it; formula says how, for the reference.
func intFrom(formula string, def func(*Config) int, lo, hi int, field func(*Config) *int) reader {
	return reader{def: formula, accepts: fmt.Sprintf("whole number, %d to %d", lo, hi), read: func(p *parser, name string, c *Config) {
		*field(c) = p.intIn(name, def(c), lo, hi)
	}}
}

func int64In(def, lo, hi int, field func(*Config) *int64) reader {
	return reader{def: code(strconv.Itoa(def)), accepts: fmt.Sprintf("whole number, %d to %d", lo, hi), read: func(p *parser, name string, c *Config) {
		*field(c) = int64(p.intIn(name, def, lo, hi))
	}}
}

// rate is a number of events a second, at least 0 (0 disables the limit).
func rate(def float64, field func(*Config) *float64) reader {
	return reader{def: code(strconv.FormatFloat(def, 'g', -1, 64)), accepts: "number ≥ 0", read: func(p *parser, name string, c *Config) {
		v := p.float(name, def)
		if v < 0 {
			p.fail(name, fmt.Sprint(v), "a number >= 0 (0 disables the limit)")
		}
		*field(c) = v
	}}
}

// duration is a duration of at least least; 0 is allowed only when least
// is 0.
func duration(def, least time.Duration, field func(*Config) *time.Duration) reader {
	accepts := "duration ≥ " + formatDuration(least)
	if least == 0 {
		accepts = "duration, `0` allowed"
	}
	return reader{def: code(formatDuration(def)), accepts: accepts, read: func(p *parser, name string, c *Config) {
		*field(c) = p.duration(name, def, least)
	}}
}

// durationFrom is a duration of at least least whose default is computed
// from the settings read before it; formula says how, for the reference.
func durationFrom(formula string, def func(*Config) time.Duration, least time.Duration, field func(*Config) *time.Duration) reader {
	return reader{def: formula, accepts: "duration ≥ " + formatDuration(least), read: func(p *parser, name string, c *Config) {
		*field(c) = p.duration(name, def(c), least)
	}}
}

// formatDuration writes d as a setting would be given: 2m rather than
// Go's 2m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func list(def []string, field func(*Config) *[]string) reader {
	return reader{def: none(strings.Join(def, ",")), accepts: "comma-separated list", read: func(p *parser, name string, c *Config) {
		*field(c) = p.list(name, def)
	}}
}

func prefixes(field func(*Config) *[]netip.Prefix) reader {
	return reader{def: none(""), accepts: "IP addresses and CIDR ranges, comma separated", read: func(p *parser, name string, c *Config) {
		*field(c) = p.prefixes(name)
	}}
}

func topic(def string, field func(*Config) *string) reader {
	return topicFrom(code(def), func(*Config) string { return def }, field)
}

// topicFrom is a Kafka topic name whose default is computed from the
// settings read before it; formula says how, for the reference.
func topicFrom(formula string, def func(*Config) string, field func(*Config) *string) reader {
	return reader{def: formula, accepts: "Kafka topic name: letters, digits, `.`, `_`, `-`", read: func(p *parser, name string, c *Config) {
		*field(c) = p.topic(name, def(c))
	}}
}

// file is the path of a readable file; unset, def when that file exists.
func file(def string, field func(*Config) *string) reader {
	return reader{def: code(def) + " when it exists", accepts: "path of a readable file", read: func(p *parser, name string, c *Config) {
		*field(c) = p.file(name, def)
	}}
}

func onOff(def bool, field func(*Config) *bool) reader {
	shown := "off"
	if def {
		shown = "on"
	}
	return reader{def: code(shown), accepts: "`on` or `off`", read: func(p *parser, name string, c *Config) {
		*field(c) = p.onOff(name, def)
	}}
}

func oneOf(def string, allowed []string, field func(*Config) *string) reader {
	return oneOfFrom(code(def), func(*Config) string { return def }, allowed, field)
}

// oneOfFrom is one of allowed, whose default is computed from the settings
// read before it; formula says how, for the reference.
func oneOfFrom(formula string, def func(*Config) string, allowed []string, field func(*Config) *string) reader {
	return reader{def: formula, accepts: codes(allowed), read: func(p *parser, name string, c *Config) {
		*field(c) = p.oneOf(name, def(c), allowed...)
	}}
}

func codes(values []string) string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = code(v)
	}
	return strings.Join(out, ", ")
}

func level(def slog.Level, field func(*Config) *slog.Level) reader {
	return reader{def: code(strings.ToLower(def.String())), accepts: "`debug`, `info`, `warn`, `error`", read: func(p *parser, name string, c *Config) {
		*field(c) = p.level(name, def)
	}}
}

// Known reports whether name is a variable the server reads.
func Known(name string) bool {
	for _, d := range definitions {
		if d.Name == name {
			return true
		}
	}
	return false
}
