// Package jsonvalid checks JSON syntax quickly. Valid gives the same answer
// as encoding/json.Valid for every input (the tests compare them, fuzzing
// included) at a fraction of the cost: the gateway checks every request's
// envelope and every response's payload, and encoding/json's scanner, one
// indirect call per byte, was a quarter of its CPU time at high rates.
package jsonvalid

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

// Valid reports whether data is one JSON value (RFC 8259), with optional
// whitespace around it. Like encoding/json, it does not check that strings
// are valid UTF-8. It does not allocate unless arrays and objects nest more
// than 64 deep, and it never recurses.
func Valid(data []byte) bool {
	var small [64]byte
	stack := small[:0] // open containers: '{' or '['
	n := len(data)
	i := 0
	var top byte

value:
	i = skipSpace(data, i)
	if i >= n {
		return false
	}
	switch c := data[i]; c {
	case '{', '[':
		if len(stack) >= maxDepth {
			return false
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipSpace(data, i+1)
		if i < n && data[i] == closing {
			i++
			goto after
		}
		stack = append(stack, c)
		if c == '{' {
			goto key
		}
		goto value
	case '"':
		if i = skipString(data, i); i < 0 {
			return false
		}
	case 't':
		if i = skipLiteral(data, i, "true"); i < 0 {
			return false
		}
	case 'f':
		if i = skipLiteral(data, i, "false"); i < 0 {
			return false
		}
	case 'n':
		if i = skipLiteral(data, i, "null"); i < 0 {
			return false
		}
	default:
		if i = skipNumber(data, i); i < 0 {
			return false
		}
	}

after:
	i = skipSpace(data, i)
	if len(stack) == 0 {
		return i == n
	}
	if i >= n {
		return false
	}
	top = stack[len(stack)-1]
	switch data[i] {
	case ',':
		i++
		if top == '{' {
			goto key
		}
		goto value
	case '}':
		if top != '{' {
			return false
		}
	case ']':
		if top != '[' {
			return false
		}
	default:
		return false
	}
	stack = stack[:len(stack)-1]
	i++
	goto after

key:
	i = skipSpace(data, i)
	if i >= n || data[i] != '"' {
		return false
	}
	if i = skipString(data, i); i < 0 {
		return false
	}
	i = skipSpace(data, i)
	if i >= n || data[i] != ':' {
		return false
	}
	i++
	goto value
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at data[i] (a
// quote), or -1.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		for i < len(data) && plain[data[i]] { // the common case, one table lookup a byte
			i++
		}
		if i >= len(data) {
			return -1
		}
		c := data[i]
		switch {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// plain marks the bytes a string holds as they are: not a quote, a
// backslash or a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func skipLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipNumber returns the index after the number starting at data[i], or
// -1: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(data []byte, i int) int {
	n := len(data)
	if i < n && data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
