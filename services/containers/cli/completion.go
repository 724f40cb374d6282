package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

func completionCommand() *command {
	return &command{
		name: "completion", short: "Print a shell completion script (bash or zsh).", use: "completion bash|zsh",
		example: "  source <(kanto-cm completion bash)", noDial: true,
		run: func(_ context.Context, a *app, args []string) error {
			if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
				return errors.New("expected one shell: bash or zsh")
			}
			var b strings.Builder
			if args[0] == "zsh" {
				b.WriteString("autoload -U +X bashcompinit && bashcompinit\n")
			}
			b.WriteString("_kanto_cm() {\n  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n")
			b.WriteString("  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W \"")
			var names []string
			flags := map[string][]string{}
			for _, c := range commands() {
				names = append(names, c.name)
				fs := a.newCmdFlags(c)
				for l := range fs.typ {
					flags[c.name] = append(flags[c.name], "--"+l)
				}
				sort.Strings(flags[c.name])
			}
			sort.Strings(names)
			b.WriteString(strings.Join(names, " "))
			b.WriteString("\" -- \"$cur\")); return; fi\n  case \"$cmd\" in\n")
			for _, n := range names {
				fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\"));;\n", n, strings.Join(flags[n], " "))
			}
			b.WriteString("  esac\n  if [[ \"$cur\" != -* ]] && command -v kanto-cm >/dev/null; then\n")
			b.WriteString("    COMPREPLY+=($(compgen -W \"$(kanto-cm list -q 2>/dev/null)\" -- \"$cur\"))\n  fi\n}\n")
			b.WriteString("complete -F _kanto_cm kanto-cm\n")
			fmt.Fprint(a.out(), b.String())
			return nil
		},
	}
}
