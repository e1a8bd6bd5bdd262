package main

//go:generate sh -c "go run . man > arpcheck.8"

import (
	"io"

	"github.com/urfave/cli/v2"
)

// writeMan writes the manual page, in roff, generated from the same
// command definitions as --help: `arpcheck man > arpcheck.8`, or
// `go generate ./cmd/arpcheck`, which writes cmd/arpcheck/arpcheck.8.
func writeMan(app *cli.App, w io.Writer) error {
	page, err := app.ToManWithSection(8) // system administration commands
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, page)
	return err
}

// bashCompletion completes arpcheck's commands and flags: bash runs the
// words typed so far with --generate-bash-completion, and arpcheck prints
// the candidates (urfave/cli's EnableBashCompletion).
const bashCompletion = `# bash completion for arpcheck: source <(arpcheck completion bash)
_arpcheck() {
	local word="${COMP_WORDS[COMP_CWORD]}" words
	if [[ "$word" == -* ]]; then
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$word" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$word"))
}
complete -o bashdefault -o default -F _arpcheck arpcheck
`
