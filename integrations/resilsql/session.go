package resilsql

import "strings"

// plainRead reports whether query, made with RetryReads, may be taken at
// its word as a read that leaves nothing on the session: it is one
// statement (nothing but comments after a semicolon), begins with SELECT,
// WITH, VALUES, TABLE or SHOW, and names nothing in sessionWords or
// sessionPrefixes, nor MySQL's := assignment. Comments are skipped; words
// and semicolons inside string literals and quoted identifiers are not,
// so that where it is unsure it says "not a plain read", which costs a
// retry. What it cannot see is a function of the user's own that changes
// the session from inside a SELECT: such a query must not be marked with
// RetryReads.
func plainRead(query string) bool {
	if strings.Contains(query, ":=") {
		return false
	}
	first, ended := true, false // ended: a semicolon has been seen
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			if n := strings.IndexByte(query[i:], '\n'); n >= 0 {
				i += n + 1
			} else {
				i = len(query)
			}
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			i = skipBlockComment(query, i)
		case c == ';':
			ended = true
			i++
		case isWordByte(c):
			if ended {
				return false // a second statement
			}
			j := i + 1
			for j < len(query) && isWordByte(query[j]) {
				j++
			}
			w := query[i:j]
			if first && !firstWordOfRead(w) {
				return false
			}
			first = false
			if changesSession(w) {
				return false
			}
			i = j
		default:
			i++
		}
	}
	return !first
}

// skipBlockComment returns the index just past the comment opening at i;
// PostgreSQL's block comments nest.
func skipBlockComment(q string, i int) int {
	depth := 0
	for i < len(q) {
		switch {
		case q[i] == '/' && i+1 < len(q) && q[i+1] == '*':
			depth++
			i += 2
		case q[i] == '*' && i+1 < len(q) && q[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
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
