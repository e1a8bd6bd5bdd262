package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Shell completion and the manual page, from the binary: urfave/cli reads
// os.Args to complete, so this cannot run in the test process. These
// need no privilege.
func TestBinaryCompletionAndMan(t *testing.T) {
	tests := []struct {
		args []string
		want []string // lines
		not  []string // lines that must not be there
	}{
		{args: []string{"--generate-bash-completion"}, want: []string{"verify", "repair", "probe", "doctor", "version"},
			not: []string{"man", "completion"}},
		{args: []string{"repair", "-", "--generate-bash-completion"},
			want: []string{"--interface", "--peers", "--delete-dead", "--dry-run", "--include-permanent", "--format"}},
		{args: []string{"probe", "-", "--generate-bash-completion"}, want: []string{"--mac", "--count", "--interval"},
			not: []string{"--dry-run"}},
		{args: []string{"doctor", "-", "--generate-bash-completion"}, want: []string{"--interface", "--format"},
			not: []string{"--dry-run", "--peers"}},
		{args: []string{"version", "-", "--generate-bash-completion"}, want: []string{"--format"}},
		{args: []string{"man"}, want: []string{".TH arpcheck 8", ".SH doctor", ".SH version"}},
		{args: []string{"completion", "bash"}, want: []string{"complete -o bashdefault -o default -F _arpcheck arpcheck"}},
	}
	for _, tt := range tests {
		out, err := exec.Command(binary(t), tt.args...).Output()
		if err != nil {
			t.Errorf("arpcheck %q: %v", tt.args, err)
			continue
		}
		lines := strings.Split(string(out), "\n")
		has := func(l string) bool {
			for _, x := range lines {
				if x == l {
					return true
				}
			}
			return false
		}
		for _, w := range tt.want {
			if !has(w) {
				t.Errorf("arpcheck %q: no line %q in\n%s", tt.args, w, out)
			}
		}
		for _, n := range tt.not {
			if has(n) {
				t.Errorf("arpcheck %q: line %q in\n%s", tt.args, n, out)
			}
		}
	}
}

// The completion script works in bash: it offers the commands.
func TestBinaryCompletionInBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := `source <("$ARPCHECK" completion bash)
arpcheck() { "$ARPCHECK" "$@"; }
COMP_WORDS=(arpcheck re); COMP_CWORD=1
_arpcheck
printf '%s\n' "${COMPREPLY[@]}"
COMP_WORDS=(arpcheck verify --dea); COMP_CWORD=2
_arpcheck
printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command(bash, "-c", script)
	cmd.Env = append(cmd.Environ(), "ARPCHECK="+binary(t))
	out, err := cmd.CombinedOutput()
	if got, want := string(out), "repair\n--deadline\n"; err != nil || got != want {
		t.Errorf("completions %q, %v; want %q", got, err, want)
	}
}

// A release sets the version with -ldflags, and version reports it.
func TestBinaryVersionFromLdflags(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "arpcheck")
	out, err := exec.Command(goCmd, "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "arpcheck v9.8.7 ") {
		t.Errorf("arpcheck version = %q, %v; want arpcheck v9.8.7 ...", out, err)
	}
}
