package resilsql

import "strings"

// plainRead reports whether query, made with RetryReads, may be taken at
// its word as a read that leaves nothing on the session: it is one
// statement, begins with SELECT, WITH, VALUES, TABLE or SHOW, and names
// nothing in sessionWords or sessionPrefixes, nor MySQL's := assignment.
//
// It is a scan of words, not a parser, built so that whatever a dialect
// makes of the text, the scan sees at least what the server runs: it may
// take a plain read for a session change (a retry lost), never a query
// that names one of its words, or has a second statement, for a plain
// read. So words count wherever they are, in string literals and quoted
// identifiers too, and the scan skips only what every dialect takes for
// a comment: before the first quote of any kind (' " ` [ or a dollar
// quote), a -- followed by a space, up to the end of the line, and a
// /* other than MySQL's /*! and /*M!, up to the first */. After a
// semicolon only spaces, semicolons and such comments may follow.
//
// What it cannot see is a session change made by a function not in its
// lists (one of the user's own, or a built-in it does not know) called
// from a plain SELECT: such a query must not be marked with RetryReads.
func plainRead(query string) bool {
	if strings.Contains(query, ":=") {
		return false
	}
	first := true   // no word seen yet
	ended := false  // a semicolon has been seen
	quoted := false // a quote has been seen: no comment is skipped from then on
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case !quoted && lineComment(query, i):
			i = endOfLine(query, i)
		case !quoted && blockComment(query, i):
			i = skipBlockComment(query, i)
		case isSpace(c) || c == ';':
			ended = ended || c == ';'
			i++
		case ended:
			return false // a second statement
		case isWordByte(c):
			j := i + 1
			for j < len(query) && isWordByte(query[j]) {
				j++
			}
			w := query[i:j]
			if strings.IndexByte(w, '$') >= 0 && !placeholder(w) {
				quoted = true // a dollar quote, or what may be one
			}
			if first && !firstWordOfRead(w) {
				return false
			}
			first = false
			if changesSession(w) {
				return false
			}
			i = j
		default:
			if c == '\'' || c == '"' || c == '`' || c == '[' {
				quoted = true
			}
			i++
		}
	}
	return !first
}

// lineComment reports whether a comment to the end of the line opens at
// i: a -- followed by a space or the end of q, as MySQL requires.
func lineComment(q string, i int) bool {
	return strings.HasPrefix(q[i:], "--") && (i+2 == len(q) || isSpace(q[i+2]))
}

// endOfLine returns the index just past the line comment opening at i.
// The comment ends at the first newline or carriage return, where
// PostgreSQL ends it.
func endOfLine(q string, i int) int {
	if n := strings.IndexAny(q[i:], "\n\r"); n >= 0 {
		return i + n + 1
	}
	return len(q)
}

// blockComment reports whether a block comment opens at i: a /* but
// MySQL's /*! and MariaDB's /*M!, whose text the server runs.
func blockComment(q string, i int) bool {
	return strings.HasPrefix(q[i:], "/*") && !strings.HasPrefix(q[i+2:], "!") && !strings.HasPrefix(q[i+2:], "M!")
}

// skipBlockComment returns the index just past the block comment opening
// at i, which ends at the first */: PostgreSQL's comments nest and
// MySQL's do not, and ending where MySQL does leaves the rest of a
// PostgreSQL comment to be scanned as words.
func skipBlockComment(q string, i int) int {
	if n := strings.Index(q[i+2:], "*/"); n >= 0 {
		return i + 2 + n + 2
	}
	return len(q)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// placeholder reports whether w is a PostgreSQL parameter, $ and digits.
func placeholder(w string) bool {
	if len(w) < 2 || w[0] != '$' {
		return false
	}
	for i := 1; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func firstWordOfRead(w string) bool {
	for _, r := range [...]string{"select", "with", "values", "table", "show"} {
		if strings.EqualFold(w, r) {
			return true
		}
	}
	return false
}

// sessionWords change the server session when a query names them: its
// settings, its sequences' last values, its locks, its tables or
// variables (SELECT ... INTO), its connections to other servers.
var sessionWords = [...]string{
	"set_config", "nextval", "setval", "into", "temp", "temporary",
	"get_lock", "release_lock", "release_all_locks", "sp_getapplock", "sp_releaseapplock",
	"setseed", "last_insert_id",
}

// sessionPrefixes begin the names of families of such functions:
// PostgreSQL's advisory locks and dblink.
var sessionPrefixes = [...]string{"pg_advisory", "pg_try_advisory", "dblink"}

func changesSession(w string) bool {
	for _, s := range sessionWords {
		if strings.EqualFold(w, s) {
			return true
		}
	}
	for _, p := range sessionPrefixes {
		if len(w) >= len(p) && strings.EqualFold(w[:len(p)], p) {
			return true
		}
	}
	return false
}
