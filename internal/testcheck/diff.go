package testcheck

import (
	"fmt"
	"reflect"
	"strings"
)

// Diff returns "" if want and got are equal as reflect.DeepEqual has it,
// and otherwise a report of how they differ, one line a difference: for
// two slices or arrays of one type, each index whose elements differ and
// the lengths if they differ; for two structs (or pointers to structs) of
// one type, each field that differs, and each field of a field that is a
// struct itself; for anything else, both values whole.
func Diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, g := reflect.ValueOf(want), reflect.ValueOf(got)
	var lines []string
	if w.IsValid() && g.IsValid() && w.Type() == g.Type() {
		switch w.Kind() {
		case reflect.Slice, reflect.Array:
			lines = diffElems(w, g)
		case reflect.Struct, reflect.Pointer:
			lines = diffFields("", w, g, 1)
		}
	}
	if len(lines) == 0 {
		return fmt.Sprintf("-want %+v\n+got %+v", want, got)
	}
	return strings.Join(lines, "\n")
}

// diffElems lists the indexes at which two slices or arrays of one type
// differ, and their lengths if those differ.
func diffElems(w, g reflect.Value) []string {
	var lines []string
	if w.Kind() == reflect.Slice && w.IsNil() != g.IsNil() {
		lines = append(lines, fmt.Sprintf("nil: -want %v +got %v", w.IsNil(), g.IsNil()))
	}
	for i := range max(w.Len(), g.Len()) {
		switch {
		case i >= g.Len():
			lines = append(lines, fmt.Sprintf("[%d]: -want %s", i, show(w.Index(i))))
		case i >= w.Len():
			lines = append(lines, fmt.Sprintf("[%d]: +got %s", i, show(g.Index(i))))
		case !equal(w.Index(i), g.Index(i)):
			lines = append(lines, fmt.Sprintf("[%d]: -want %s +got %s", i, show(w.Index(i)), show(g.Index(i))))
		}
	}
	if w.Len() != g.Len() {
		lines = append(lines, fmt.Sprintf("len: -want %d +got %d", w.Len(), g.Len()))
	}
	return lines
}

// diffFields lists the exported fields in which two structs of one type,
// or the structs two pointers point to, differ, looking depth levels
// into fields that are structs themselves. It returns nil for values of
// any other kind, and for structs that differ in unexported fields only.
func diffFields(path string, w, g reflect.Value, depth int) []string {
	if w.Kind() == reflect.Pointer {
		if w.IsNil() || g.IsNil() || w.Elem().Kind() != reflect.Struct {
			return nil
		}
		w, g = w.Elem(), g.Elem()
	}
	if w.Kind() != reflect.Struct {
		return nil
	}
	var lines []string
	for i := range w.NumField() {
		wf, gf := w.Field(i), g.Field(i)
		if !wf.CanInterface() || equal(wf, gf) {
			continue
		}
		name := path + w.Type().Field(i).Name
		var sub []string
		if depth > 0 {
			sub = diffFields(name+".", wf, gf, depth-1)
		}
		if len(sub) == 0 {
			sub = []string{fmt.Sprintf("%s: -want %s +got %s", name, show(wf), show(gf))}
		}
		lines = append(lines, sub...)
	}
	return lines
}

// equal reports whether two values are deeply equal; values that cannot
// be read (unexported fields) count as unequal.
func equal(w, g reflect.Value) bool {
	return w.CanInterface() && g.CanInterface() && reflect.DeepEqual(w.Interface(), g.Interface())
}

// show formats a value for a report: strings quoted, so that "" and " "
// are told apart, pointers followed one level, anything else as %+v.
func show(v reflect.Value) string {
	switch {
	case v.Kind() == reflect.String:
		return fmt.Sprintf("%q", v.String())
	case v.Kind() == reflect.Pointer && !v.IsNil() && v.CanInterface():
		return fmt.Sprintf("&%+v", v.Elem().Interface())
	case v.CanInterface():
		return fmt.Sprintf("%+v", v.Interface())
	}
	return fmt.Sprintf("%+v", v)
}
