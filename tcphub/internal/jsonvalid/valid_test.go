package jsonvalid

import (
	"encoding/json"
	"strings"
	"testing"
)

var cases = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `nulll`, `tru`, `True`, `0`, `-0`, `-`, `01`, `1.`, `1.5`, `.5`, `1e`, `1e+`,
	`1e+5`, `1E-05`, `-12.5e3`, `+1`, `1 2`, `"a"`, `"`, `"\"`, `"\\"`, `"\u00e9"`, `"\u00g9"`, `"\u12"`, `"\x"`,
	"\"a\tb\"", "\"\x1f\"", "\"\x7f\xff\xfe\"", `[]`, `[ ]`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`, `{}`, `{ }`, `{"a":1}`,
	`{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":}`, `{"a":1 "b":2}`, `{"a":[1,{"b":null}],"c":"d"}`, `[}`, `{]`, `[[]`, `[]]`,
	" \t\r\n{\"x\" : [ true , false ] }\n ", "\v1", `{"a":1}x`, `{"temp":21.5,"unit":"C"}`, `[1,[2,[3,[4]]]]`,
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, c := range cases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	for _, d := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, s := range []string{
			strings.Repeat("[", d) + strings.Repeat("]", d),
			strings.Repeat("[", d) + "1" + strings.Repeat("]", d),
			strings.Repeat(`{"a":`, d-1) + "{}" + strings.Repeat("}", d-1),
		} {
			if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
				t.Errorf("depth %d (%.12s...): Valid %v, encoding/json %v", d, s, got, want)
			}
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

var payload = []byte(`{"sensor":"t-17","temp":21.5,"unit":"C","battery":0.87,"fw":"2.3.1","note":"a payload \u00e9","tags":[1,2,3,null,true]}`)

func BenchmarkValid(b *testing.B) {
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		Valid(payload)
	}
}

func BenchmarkEncodingJSONValid(b *testing.B) {
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		json.Valid(payload)
	}
}
