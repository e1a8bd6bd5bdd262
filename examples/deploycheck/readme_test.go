package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README is copied from as much as the deployment files: its
// commands, flags and Go snippet must work.

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeBlocks returns the fenced code blocks of a Markdown text whose info
// string is lang ("" for any).
func codeBlocks(md, lang string) []string {
	var blocks, cur []string
	in, keep := false, false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "```") && !in:
			in, cur = true, nil
			keep = lang == "" || strings.TrimSpace(line[3:]) == lang
		case strings.HasPrefix(line, "```"):
			in = false
			if keep {
				blocks = append(blocks, strings.Join(cur, "\n"))
			}
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

func TestCodeBlocks(t *testing.T) {
	md := "x\n```go\npackage a\n```\n```sh\nls\n```\n```\nplain\n```\n"
	if got := codeBlocks(md, "go"); len(got) != 1 || got[0] != "package a" {
		t.Errorf("go blocks = %q", got)
	}
	if got := codeBlocks(md, ""); len(got) != 3 {
		t.Errorf("all blocks = %q", got)
	}
}

// The library snippet compiles, as part of this module.
func TestReadmeSnippetBuilds(t *testing.T) {
	var snippet string
	for _, b := range codeBlocks(readme(t), "go") {
		if strings.Contains(b, "package main") {
			snippet = b
		}
	}
	if snippet == "" {
		t.Fatal("README has no Go snippet with package main")
	}
	if n := strings.Count(snippet, "\n"); n > 30 {
		t.Errorf("the library snippet has %d lines; keep it short", n)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "main.go")
	if err := os.WriteFile(file, []byte(snippet+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Run from inside the module, a file named on the command line builds
	// against the module's packages.
	if out, err := exec.Command("go", "vet", file).CombinedOutput(); err != nil {
		t.Errorf("go vet on the README's snippet: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "snippet"), file).CombinedOutput(); err != nil {
		t.Errorf("go build of the README's snippet: %v\n%s", err, out)
	}
}

var longFlag = regexp.MustCompile("(?:^|[\\s`(|])(--[a-z][a-z0-9-]*)")

// otherTools are the programs the README compares arpcheck with.
var otherTools = []string{"arp-scan", "arping", "systemctl"}

// otherTool reports whether the flag at md[i:] belongs to one of
// otherTools: one of them is named before it on the same line, and no
// "arpcheck" between.
func otherTool(md string, i int) bool {
	line := md[strings.LastIndexByte(md[:i], '\n')+1 : i]
	last := -1
	for _, tool := range otherTools {
		last = max(last, strings.LastIndex(line, tool))
	}
	// "arpcheck " as a command; "arpcheck-watch" is a unit's name.
	return last >= 0 && !strings.Contains(line[last:], "arpcheck ")
}

// Every long flag the README names is a flag of some arpcheck command
// (unless it follows the name of a tool arpcheck is compared with, on the
// same line), and every arpcheck command line it shows after a "$ "
// prompt parses.
func TestReadmeFlagsExist(t *testing.T) {
	md := readme(t)
	commands := []string{"verify", "repair", "probe", "watch", "doctor"}
	flags := map[string]map[string]bool{}
	for _, c := range commands {
		flags[c] = cliFlags(t, c)
	}
	for _, m := range longFlag.FindAllStringSubmatchIndex(md, -1) {
		name := md[m[2]:m[3]]
		if otherTool(md, m[2]) {
			continue
		}
		found := false
		for _, c := range commands {
			if _, ok := flags[c][name]; ok {
				found = true
			}
		}
		if !found {
			t.Errorf("README names %s, which no arpcheck command has", name)
		}
	}

	n := 0
	for _, b := range codeBlocks(md, "") {
		for _, line := range strings.Split(b, "\n") {
			args := strings.Fields(line)
			if len(args) < 3 || args[0] != "$" || args[1] != "arpcheck" {
				continue
			}
			n++
			cmd, rest := args[2], args[3:]
			known, ok := flags[cmd]
			if !ok {
				if cmd != "version" {
					t.Errorf("README runs %q: no such command", line)
				}
				continue
			}
			for i := 0; i < len(rest); i++ {
				a := rest[i]
				if a == "|" {
					break
				}
				if !strings.HasPrefix(a, "-") {
					continue
				}
				name, _, inline := strings.Cut(a, "=")
				takesValue, ok := known[name]
				if !ok {
					t.Errorf("README runs %q: arpcheck %s has no flag %s", line, cmd, name)
				}
				if takesValue && !inline {
					i++
				}
			}
		}
	}
	if n == 0 {
		t.Error("README shows no arpcheck command after a \"$ \" prompt")
	}
}
