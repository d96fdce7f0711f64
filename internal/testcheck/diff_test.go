package testcheck

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	N    int
	Name string
}

type outer struct {
	A     int
	In    inner
	Ptr   *inner
	F     func()
	Slice []string
	hid   int
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want, got any
		report    string
	}{
		{"equal slices", []string{"a", "b"}, []string{"a", "b"}, ""},
		{"equal structs", outer{A: 1, Ptr: &inner{N: 2}}, outer{A: 1, Ptr: &inner{N: 2}}, ""},
		{"both nil", nil, nil, ""},
		{"an element", []string{"a", "b", "c"}, []string{"a", "x", "c"}, `[1]: -want "b" +got "x"`},
		{"got shorter", []int{1, 2, 3}, []int{1}, "[1]: -want 2\n[2]: -want 3\nlen: -want 3 +got 1"},
		{"got longer", []time.Duration{time.Second}, []time.Duration{time.Second, time.Millisecond}, "[1]: +got 1ms\nlen: -want 1 +got 2"},
		{"nil and empty", []int(nil), []int{}, "nil: -want true +got false"},
		{"arrays", [2]int{1, 2}, [2]int{1, 3}, "[1]: -want 2 +got 3"},
		{"struct elements", []inner{{1, "a"}}, []inner{{1, "b"}}, "[0]: -want {N:1 Name:a} +got {N:1 Name:b}"},
		{"fields", outer{A: 1, Slice: []string{"x"}}, outer{A: 2, Slice: []string{"y"}}, "A: -want 1 +got 2\nSlice: -want [x] +got [y]"},
		{"a field of a field", outer{In: inner{N: 1, Name: "a"}}, outer{In: inner{N: 1, Name: "b"}}, `In.Name: -want "a" +got "b"`},
		{"through a pointer", outer{Ptr: &inner{N: 1}}, outer{Ptr: &inner{N: 2}}, "Ptr.N: -want 1 +got 2"},
		{"a nil pointer", outer{Ptr: &inner{N: 1}}, outer{}, "Ptr: -want &{N:1 Name:} +got <nil>"},
		{"pointers to structs", &inner{N: 1}, &inner{N: 2}, "N: -want 1 +got 2"},
		{"an unexported field", outer{hid: 1}, outer{hid: 2}, "-want {A:0 In:{N:0 Name:} Ptr:<nil> F:<nil> Slice:[] hid:1}\n+got {A:0 In:{N:0 Name:} Ptr:<nil> F:<nil> Slice:[] hid:2}"},
		{"other values", 1, 2, "-want 1\n+got 2"},
		{"other types", 1, "1", "-want 1\n+got 1"},
		{"one nil", nil, 1, "-want <nil>\n+got 1"},
	} {
		if got := Diff(tc.want, tc.got); got != tc.report {
			t.Errorf("%s: Diff(%+v, %+v) =\n%s\nwant\n%s", tc.name, tc.want, tc.got, got, tc.report)
		}
	}
	// A func is equal to another only if both are nil.
	if got := Diff(outer{}, outer{F: func() {}}); !strings.HasPrefix(got, "F: -want <nil> +got 0x") || strings.Contains(got, "\n") {
		t.Errorf("Diff with a func set = %q; want the field F alone", got)
	}
}
