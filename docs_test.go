package resilience_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCOMPARISONNamesExist checks the resilience column of every feature
// table of docs/COMPARISON.md against the code: each identifier it names
// in backquotes (NewTimeout, TimeoutConfig.Abandon, resilhttp.Shed, ...)
// is an exported declaration of this repository's packages, so that the
// table cannot claim an API that is not there.
func TestCOMPARISONNamesExist(t *testing.T) {
	known := exportedNames(t, ".", "presets", "window", "metrics", "resilotel",
		"integrations/resilhttp", "integrations/resilgrpc", "integrations/resilsql", "integrations/resilredis")
	doc, err := os.ReadFile("docs/COMPARISON.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start, end := strings.Index(text, "\n## Features"), strings.Index(text, "\n## Behaviour")
	if start < 0 || end < start {
		t.Fatal("docs/COMPARISON.md has no Features section before Behaviour")
	}
	ident := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?$`)
	checked := 0
	ours := false // the table being read has this library in its second column
	for line := range strings.Lines(text[start:end]) {
		if !strings.HasPrefix(line, "|") {
			ours = false
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		if strings.HasPrefix(line, "| |") || strings.HasPrefix(line, "| feature") {
			ours = strings.TrimSpace(cells[2]) == "resilience"
			continue
		}
		if !ours {
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(cells[2], -1) {
			name := strings.TrimSuffix(m[1], "[T]")
			if !ident.MatchString(name) || (name[0] >= 'a' && name[0] <= 'z' && !strings.Contains(name, ".")) {
				continue // not an identifier of ours: a header, a package, a setting of a peer
			}
			checked++
			if !known[name] {
				t.Errorf("docs/COMPARISON.md names %q in the resilience column, which no package here declares", name)
			}
		}
	}
	if checked < 30 {
		t.Errorf("checked %d names, want the feature tables' 30 or more: did the layout of the tables change?", checked)
	}
}

// exportedNames returns the exported names declared in the packages in
// dirs: Name, Type.Member for fields and methods, and pkg.Name.
func exportedNames(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		pkg := filepath.Base(dir)
		if dir == "." {
			pkg = "resilience"
		}
		fset := token.NewFileSet()
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			add := func(n string) {
				if ast.IsExported(n) {
					names[n] = true
					names[pkg+"."+n] = true
				}
			}
			for _, d := range file.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						add(d.Name.Name)
						continue
					}
					recv := d.Recv.List[0].Type
					if s, ok := recv.(*ast.StarExpr); ok {
						recv = s.X
					}
					if ix, ok := recv.(*ast.IndexExpr); ok {
						recv = ix.X
					}
					if id, ok := recv.(*ast.Ident); ok && ast.IsExported(d.Name.Name) {
						names[d.Name.Name] = true
						names[id.Name+"."+d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.TypeSpec:
							add(s.Name.Name)
							if st, ok := s.Type.(*ast.StructType); ok {
								for _, f := range st.Fields.List {
									for _, n := range f.Names {
										if ast.IsExported(n.Name) {
											names[n.Name] = true
											names[s.Name.Name+"."+n.Name] = true
										}
									}
								}
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								add(n.Name)
							}
						}
					}
				}
			}
		}
	}
	return names
}
