package fleetcheck

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/arpcheck/arpcheck/internal/proctest"
)

// repoRoot is the root of the repository, the build context of the
// Containerfile.
const repoRoot = "../../.."

// containerfile is the image build, relative to this package.
const containerfile = "../container/Containerfile"

// instruction is one instruction of a Containerfile, its continuation
// lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // FROM, RUN, COPY ..., upper case
	args string // the rest, as written
}

// stage is one FROM and the instructions after it.
type stage struct {
	base, name string
	ins        []instruction
}

// find returns the stage's instructions of kind cmd.
func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// parseContainerfile reads a Containerfile (Dockerfile syntax): comments,
// blank lines, instructions with backslash continuations. It returns the
// stages and the ARGs given before the first FROM, with their defaults.
func parseContainerfile(text string) ([]stage, map[string]string, error) {
	var (
		stages []stage
		global = map[string]string{}
		cur    *instruction
		ins    []instruction
	)
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		more := strings.HasSuffix(trimmed, `\`)
		trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + trimmed
		}
		if !more {
			ins = append(ins, *cur)
			cur = nil
		}
	}
	if cur != nil {
		return nil, nil, fmt.Errorf("line %d: the last instruction ends in a backslash", cur.line)
	}
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := stage{}
			switch {
			case len(f) == 1:
				st.base = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.base, st.name = f[0], f[2]
			default:
				return nil, nil, fmt.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", in.line, in.args)
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			name, value, _ := strings.Cut(in.args, "=")
			global[name] = value
		case len(stages) == 0:
			return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	return stages, global, nil
}

func TestParseContainerfile(t *testing.T) {
	tests := []struct {
		desc    string
		text    string
		stages  int
		wantErr string
	}{
		{desc: "two stages", text: "ARG V=1\nFROM golang:${V} AS build\nRUN a \\\n  b\nFROM scratch\nCOPY --from=build /x /x\n", stages: 2},
		{desc: "comment inside a continuation", text: "FROM x\nRUN a \\\n# note\n  b\n", stages: 1},
		{desc: "instruction before FROM", text: "RUN a\nFROM x\n", wantErr: "before the first FROM"},
		{desc: "dangling backslash", text: "FROM x\nRUN a \\", wantErr: "backslash"},
		{desc: "bad FROM", text: "FROM a b\n", wantErr: "want IMAGE"},
	}
	for _, tt := range tests {
		stages, _, err := parseContainerfile(tt.text)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v; want one containing %q", tt.desc, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(stages) != tt.stages {
			t.Errorf("%s: %d stages, error %v; want %d, none", tt.desc, len(stages), err, tt.stages)
		}
	}
	stages, _, _ := parseContainerfile(tests[0].text)
	if got := stages[0].find("RUN"); len(got) != 1 || got[0].args != "a b" || got[0].line != 3 {
		t.Errorf("continued RUN = %+v; want line 3, \"a b\"", got)
	}
}

// image is what the Containerfile builds, found by reading it.
type image struct {
	goVersion  string   // the builder's Go, from ARG GO_VERSION
	build      stage    // the stage that runs go build
	buildCmd   string   // its go build line, as the shell gets it
	output     string   // the binary go build writes, in the build stage
	entrypoint []string // the final stage's ENTRYPOINT
	cmd        []string // its CMD
	final      stage
}

// readImage reads the Containerfile and checks its shape: a builder
// stage that runs go build, a final stage that copies the binary from it
// and runs it.
func readImage(t *testing.T) image {
	t.Helper()
	b, err := os.ReadFile(containerfile)
	if err != nil {
		t.Fatal(err)
	}
	stages, global, err := parseContainerfile(string(b))
	if err != nil {
		t.Fatalf("%s: %v", containerfile, err)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages; want a build stage and a final one", containerfile, len(stages))
	}
	img := image{goVersion: global["GO_VERSION"], final: stages[len(stages)-1]}
	for _, st := range stages[:len(stages)-1] {
		for _, run := range st.find("RUN") {
			if strings.Contains(run.args, "go build") {
				img.build, img.buildCmd = st, run.args
			}
		}
	}
	if img.buildCmd == "" {
		t.Fatalf("%s: no stage before the last runs go build", containerfile)
	}
	words := strings.Fields(img.buildCmd)
	if i := slices.Index(words, "-o"); i >= 0 && i+1 < len(words) {
		img.output = words[i+1]
	} else {
		t.Fatalf("%s: go build without -o: %s", containerfile, img.buildCmd)
	}
	execForm := func(cmd string) []string {
		ins := img.final.find(cmd)
		if len(ins) != 1 {
			t.Fatalf("%s: the final stage has %d %s; want 1", containerfile, len(ins), cmd)
		}
		var v []string
		if err := json.Unmarshal([]byte(ins[0].args), &v); err != nil || len(v) == 0 {
			t.Fatalf("%s: %s %s: want the exec form, a JSON array (%v)", containerfile, cmd, ins[0].args, err)
		}
		return v
	}
	img.entrypoint, img.cmd = execForm("ENTRYPOINT"), execForm("CMD")
	return img
}

// The image is built as promised: a static, trimmed build of
// ./cmd/arpcheck with a Go at least as new as go.mod asks, copied alone
// onto an empty base and run as its entrypoint.
func TestContainerfile(t *testing.T) {
	img := readImage(t)

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if img.goVersion == "" || version.Compare("go"+img.goVersion, "go"+string(m[1])) < 0 {
		t.Errorf("ARG GO_VERSION=%s; go.mod asks for go %s or newer", img.goVersion, m[1])
	}
	if !strings.Contains(img.build.base, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s; want the golang image of GO_VERSION", img.build.base)
	}
	for _, want := range []string{"CGO_ENABLED=0 ", " -trimpath ", " ./cmd/arpcheck"} {
		if !strings.Contains(img.buildCmd+" ", want) {
			t.Errorf("build line lacks %q: %s", strings.TrimSpace(want), img.buildCmd)
		}
	}
	// The context is the repository's root, copied to the working directory.
	if copies := img.build.find("COPY"); !slices.ContainsFunc(copies, func(in instruction) bool { return in.args == ". ." }) {
		t.Errorf("the build stage does not COPY . . (the repository) into its working directory")
	}

	if base := img.final.base; base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s; want scratch or distroless static: nothing but the binary", base)
	}
	copies := img.final.find("COPY")
	if len(copies) != 1 {
		t.Fatalf("final stage has %d COPY; want 1, the binary", len(copies))
	}
	f := strings.Fields(copies[0].args)
	if len(f) != 3 || f[0] != "--from="+img.build.name || f[1] != img.output {
		t.Fatalf("final stage COPY %s; want --from=%s %s DEST", copies[0].args, img.build.name, img.output)
	}
	if img.entrypoint[0] != f[2] {
		t.Errorf("ENTRYPOINT %q runs %s; the binary is copied to %s", img.entrypoint, img.entrypoint[0], f[2])
	}
	for _, in := range img.final.find("USER") {
		t.Errorf("final stage sets USER %s; the DaemonSet sets the user (and why), the image need not", in.args)
	}

	// The default command is one arpcheck has.
	bin := builtImage(t)
	if out, err := exec.Command(bin.path, append(slices.Clone(img.cmd), "--help")...).CombinedOutput(); err != nil {
		t.Errorf("image CMD %q: %s --help fails: %v\n%s", img.cmd, img.cmd[0], err, out)
	}
}

// imageBinary is the binary the Containerfile's build line makes.
type imageBinary struct {
	path    string
	version string // the VERSION it was built with
	img     image
}

// imageBuild is the binary of the image, built once for the tests.
var imageBuild proctest.Build

func TestMain(m *testing.M) {
	code := m.Run()
	imageBuild.Remove()
	os.Exit(code)
}

// builtImage runs the Containerfile's go build line, as the build stage
// would, in the repository's root (the stage's copy of it), with the
// stage's ARGs and ENVs and the output moved to a temporary directory;
// once per test binary. It is the binary of the image for this machine's
// platform.
func builtImage(t *testing.T) imageBinary {
	t.Helper()
	img := readImage(t)
	// nobody must be able to run it (TestNonRootNeedsEscalation).
	path := imageBuild.Path(t, "arpcheck", func(path string) error {
		line := strings.Replace(img.buildCmd, " -o "+img.output+" ", " -o "+path+" ", 1)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = repoRoot
		cmd.Env = os.Environ()
		for _, in := range img.build.ins {
			switch in.cmd {
			case "ARG":
				name, value, _ := strings.Cut(in.args, "=")
				if name == "VERSION" {
					value = builtVersion
				}
				cmd.Env = append(cmd.Env, name+"="+value) // TARGETOS and TARGETARCH empty: this machine's
			case "ENV":
				cmd.Env = append(cmd.Env, in.args)
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("the Containerfile's build line, run in %s: %s: %v\n%s", repoRoot, line, err, out)
		}
		return nil
	})
	return imageBinary{path: path, version: builtVersion, img: img}
}

// builtVersion is the VERSION builtImage builds with.
const builtVersion = "v0.0.0-fleetcheck"

// The build line makes what an empty base can run: a static binary (no
// ELF interpreter, no shared library), with the version it was given.
func TestImageBinary(t *testing.T) {
	bin := builtImage(t)
	f, err := elf.Open(bin.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has an ELF interpreter: it is not static, and an empty base cannot run it")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v); want none", libs, err)
	}
	out, err := exec.Command(bin.path, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), bin.version) {
		t.Errorf("arpcheck version: %q, %v; want it to say %s (-X main.version=$VERSION)", out, err, bin.version)
	}
}
