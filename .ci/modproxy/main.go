// Command modproxy writes a Go module proxy, in the layout GOPROXY=file://
// reads, holding this repository's modules at one version, each built
// from a commit as a tag there would publish it:
//
//	go run . -version v0.2.0 -out DIR [-rev HEAD] MODULE_DIR...
//
// For each module directory (relative to the repository's root; "." is
// the root module) it writes DIR/<module>/@v/list, <version>.info, .mod
// and .zip, and prints the go.sum lines of the module at that version.
// The zips come from git archive of the commit, like the ones the go
// command makes from a tag: files of nested modules and untracked files
// are left out, and a nested module gets the root's LICENSE.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

func main() {
	version := flag.String("version", "", "the version to publish every module at, such as v0.2.0")
	out := flag.String("out", "", "the proxy's directory (created if missing)")
	rev := flag.String("rev", "HEAD", "the commit to build the modules from")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: modproxy -version vX.Y.Z -out DIR [-rev REV] MODULE_DIR...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*version, *out, *rev, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "modproxy:", err)
		os.Exit(1)
	}
}

func run(version, out, rev string, dirs []string) error {
	root, err := git("", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	root = strings.TrimSpace(root)
	commit, err := git(root, "rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		return err
	}
	commit = strings.TrimSpace(commit)
	when, err := git(root, "show", "-s", "--format=%cI", commit)
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(when))
	if err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    string
	}{version, t.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	if dirty, _ := git(root, "status", "--porcelain", "--untracked-files=no"); dirty != "" && rev == "HEAD" {
		fmt.Fprintln(os.Stderr, "modproxy: uncommitted changes are not in the proxy: it holds the commit", commit[:12])
	}
	if err := os.MkdirAll(out, 0o777); err != nil {
		return err
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		subdir := path.Clean(filepath.ToSlash(dir))
		if subdir == "." {
			subdir = ""
		}
		if err := publish(out, root, commit, subdir, version, info); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
	return nil
}

// publish writes one module's files into the proxy at out, and prints its
// go.sum lines.
func publish(out, root, commit, subdir, version string, info []byte) error {
	gomod, err := git(root, "show", commit+":"+path.Join(subdir, "go.mod"))
	if err != nil {
		return err
	}
	modPath := modfile.ModulePath([]byte(gomod))
	if modPath == "" {
		return fmt.Errorf("no module line in go.mod")
	}
	if err := module.Check(modPath, version); err != nil {
		return err
	}
	escPath, err := module.EscapePath(modPath)
	if err != nil {
		return err
	}
	escVersion, err := module.EscapeVersion(version)
	if err != nil {
		return err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escPath), "@v")
	if err := os.MkdirAll(vdir, 0o777); err != nil {
		return err
	}
	base := filepath.Join(vdir, escVersion)

	var z bytes.Buffer
	m := module.Version{Path: modPath, Version: version}
	if err := zip.CreateFromVCS(&z, m, root, commit, subdir); err != nil {
		return err
	}
	if err := os.WriteFile(base+".zip", z.Bytes(), 0o666); err != nil {
		return err
	}
	if _, err := zip.CheckZip(m, base+".zip"); err != nil {
		return err
	}
	if err := os.WriteFile(base+".mod", []byte(gomod), 0o666); err != nil {
		return err
	}
	if err := os.WriteFile(base+".info", info, 0o666); err != nil {
		return err
	}
	if err := addToList(filepath.Join(vdir, "list"), version); err != nil {
		return err
	}

	zipHash, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
	if err != nil {
		return err
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(gomod)), nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n%s %s/go.mod %s\n", modPath, version, zipHash, modPath, version, modHash)
	return nil
}

// addToList adds version to the proxy's list of a module's versions.
func addToList(file, version string) error {
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	versions := strings.Fields(string(b))
	if slices.Contains(versions, version) {
		return nil
	}
	versions = append(versions, version)
	return os.WriteFile(file, []byte(strings.Join(versions, "\n")+"\n"), 0o666)
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(b), nil
}
