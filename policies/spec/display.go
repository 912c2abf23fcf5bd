package spec

import "unicode/utf8"

// Shown is s cut to at most max bytes (on a rune boundary, with "…"
// after a cut), for quoting a client's spec back in a message: a message
// must never echo kilobytes of what a client sent.
func Shown(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
