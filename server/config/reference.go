package config

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
)

//go:generate go run ./gen -o ../docs/settings.md

// ReferencePath is where the settings reference lives, from the server
// module's root.
const ReferencePath = "docs/settings.md"

// Reference renders the settings reference (docs/settings.md) from the
// settings' definitions: a table per section, a row per variable.
func Reference() []byte {
	var b bytes.Buffer
	b.WriteString(referenceHead)
	var sections []string
	for _, s := range Settings() {
		if len(sections) == 0 || sections[len(sections)-1] != s.Section {
			sections = append(sections, s.Section)
		}
	}
	links := make([]string, len(sections))
	for i, s := range sections {
		links[i] = fmt.Sprintf("[%s](#%s)", s, anchor(s))
	}
	fmt.Fprintf(&b, "Sections: %s.\n", strings.Join(links, ", "))
	section := ""
	for _, s := range Settings() {
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(&b, "\n## %s\n\n", section)
			b.WriteString("| variable | default | values | meaning | original server |\n| --- | --- | --- | --- | --- |\n")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Name, cell(s.Default), cell(s.Accepts), cell(s.Meaning), cell(s.Original))
	}
	return b.Bytes()
}

const referenceHead = `# Settings reference

<!-- Generated from server/config/settings.go by ` + "`go generate ./config`" + ` in server/.
     Do not edit: TestReferenceIsUpToDate fails when this file differs. -->

Every setting of the chat server, as ` + "`server/config`" + ` defines it. What they do
together (the store, Redis, Kafka, balancing, deployment, cut-over) is in
[the operator's guide](operators.md).

Every setting comes from the environment, or from a ` + "`.env`" + ` file in the working
directory, in ` + "`server/`" + ` under it, or beside the executable (the environment
wins). Each value is checked at start-up; a bad one stops the start with a message
naming the variable and what it expected, every bad variable at once. Durations take
` + "`500ms`, `25s`, `2m`" + `, or a number of milliseconds (as the Node server's options
did). Secrets are never logged (nor shown in a configuration error:
` + "`AUTH_JWT_SECRET` and `ADMIN_TOKEN` are written `(hidden)`" + `).

`

// cell escapes what would end a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// anchor is the link fragment GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
