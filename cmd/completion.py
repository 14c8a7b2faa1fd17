"""Shell completion: `financial completion bash|zsh` prints a script for that shell.

The script is generated from the command line's own parser, so a command or an option added
there is completed without a change here. It holds every command's subcommands, options and
the values of options with choices; job names (a positional whose metavar is `JOB`) come from
calling back `financial jobs names`, which builds the registry without connecting to anything.
The part that computes the candidates is a function of the words typed
(`_financial_candidates`), kept apart from the shell's completion machinery, so the tests drive
it with real bash and zsh.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh")
JOB = "JOB"  # the metavar of a positional that takes a job name

# Words the generated script holds unquoted: command, option and choice names.
_WORD = re.compile(r"^[A-Za-z0-9_.:@+-]+$")


@dataclass(slots=True)
class CommandSpec:
    """What one command (a path of subcommand names) accepts."""

    path: tuple[str, ...]
    subcommands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    # Options followed by a value, with that value's choices (empty: free text).
    values: dict[str, list[str]] = field(default_factory=dict)
    # Per positional, in order: "job", or its choices, or "" (free text).
    positionals: list[str] = field(default_factory=list)


def command_specs(parser: argparse.ArgumentParser) -> list[CommandSpec]:
    """Every command of `parser`, the root first, depth first."""
    return list(_walk(parser, ()))


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[CommandSpec]:
    spec = CommandSpec(path)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                spec.subcommands.append(name)
                children.append((name, child))
        elif action.option_strings:
            spec.options.extend(action.option_strings)
            if action.nargs != 0:
                choices = [str(choice) for choice in action.choices or ()]
                for option in action.option_strings:
                    spec.values[option] = choices
        elif action.metavar == JOB:
            spec.positionals.append("job")
        else:
            spec.positionals.append(" ".join(str(choice) for choice in action.choices or ()))
    yield spec
    for name, child in children:
        yield from _walk(child, (*path, name))


def _plain(items: list[str], sep: str = " ") -> str:
    """`items` joined by `sep`, each checked to need no quoting in either shell."""
    for item in items:
        if not _WORD.match(item):
            raise ValueError(f"cannot complete {item!r}: not a plain word")
    return sep.join(items)


def _cases(specs: list[CommandSpec], indent: str) -> list[str]:
    """`case` branches, one per command path, setting the four variables the functions read:
    `cmd_valued` holds `--option=choice,choice` words, `cmd_positionals` one word per
    positional (`job`, `choice,choice`, or `-` for free text). Prefixed names: zsh ties `path`
    to PATH and `options` to its own options."""
    lines: list[str] = []
    for spec in specs:
        valued = [
            f"{_plain([option])}={_plain(choices, ',')}" for option, choices in spec.values.items()
        ]
        positionals = [_plain(kind.split(), ",") or "-" for kind in spec.positionals]
        lines.append(
            f'{indent}"{_plain(list(spec.path))}") cmd_subcommands="{_plain(spec.subcommands)}"; '
            f'cmd_options="{_plain(spec.options)}"; cmd_valued="{" ".join(valued)}"; '
            f'cmd_positionals="{" ".join(positionals)}";;'
        )
    return lines


# The candidates for the word being typed, from the words before it; shell-neutral apart from how
# the words are read, so it is written once. Inputs: `$first` (index of the first word after the
# command), `$current` (index of the word being typed), `_financial_at INDEX` (the word there);
# output: `candidates`, a list of words, or `@job` for the job names.
_CANDIDATES = r"""
    local cmd_path="" positional=0 expecting="" word i spec
    local cmd_subcommands cmd_options cmd_valued cmd_positionals
    i=$first
    while [ "$i" -lt "$current" ]; do
        word="$(_financial_at "$i")"
        i=$((i + 1))
        _financial_spec "$cmd_path"
        if [ -n "$expecting" ]; then
            expecting=""
        elif [ "$word" = "--" ]; then
            continue
        elif [ "${word#-}" != "$word" ]; then
            case " $cmd_valued " in *" $word="*) expecting="$word";; esac
        elif [ "$positional" -eq 0 ] && [ -n "$cmd_subcommands" ] \
            && case " $cmd_subcommands " in *" $word "*) true;; *) false;; esac; then
            cmd_path="${cmd_path:+$cmd_path }$word"
        else
            positional=$((positional + 1))
        fi
    done
    _financial_spec "$cmd_path"
    word="$(_financial_at "$current")"
    candidates=""
    if [ -n "$expecting" ]; then
        spec=" $cmd_valued "
        spec="${spec#* $expecting=}"
        candidates="$(echo "${spec%% *}" | tr ',' ' ')"
    elif [ "${word#-}" != "$word" ]; then
        candidates="$cmd_options"
    elif [ -n "$cmd_subcommands" ] && [ "$positional" -eq 0 ]; then
        candidates="$cmd_subcommands"
    else
        set -- $cmd_positionals
        shift "$positional" 2>/dev/null || set --
        case "${1:--}" in
            job) candidates="@job";;
            -) candidates="";;
            *) candidates="$(echo "$1" | tr ',' ' ')";;
        esac
    fi
"""


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The bash completion script: `eval "$(financial completion bash)"` in ~/.bashrc."""
    specs = command_specs(parser)
    return "\n".join(
        [
            '# bash completion for financial: eval "$(financial completion bash)"',
            "_financial_spec() {",
            '    case "$1" in',
            *_cases(specs, "        "),
            '        *) cmd_subcommands=""; cmd_options=""; cmd_valued=""; cmd_positionals="";;',
            "    esac",
            "}",
            "",
            '_financial_at() { printf "%s" "${COMP_WORDS[$1]}"; }',
            "",
            "_financial_candidates() {",
            "    # $1: index of the word being typed in COMP_WORDS; sets `candidates`.",
            '    local first=1 current="$1"',
            _CANDIDATES.strip("\n"),
            "}",
            "",
            "_financial() {",
            "    local candidates",
            '    _financial_candidates "$COMP_CWORD"',
            '    if [ "$candidates" = "@job" ]; then',
            '        candidates="$("${COMP_WORDS[0]}" jobs names 2>/dev/null)"',
            "    fi",
            '    COMPREPLY=($(compgen -W "$candidates" -- "${COMP_WORDS[COMP_CWORD]}"))',
            "}",
            "",
            "complete -F _financial financial",
            "",
        ]
    )


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """The zsh completion script: `eval "$(financial completion zsh)"` after `compinit` in
    ~/.zshrc, or saved as `_financial` in a folder of `$fpath`."""
    specs = command_specs(parser)
    return "\n".join(
        [
            "#compdef financial",
            '# zsh completion for financial: eval "$(financial completion zsh)" after compinit',
            "_financial_spec() {",
            '    case "$1" in',
            *_cases(specs, "        "),
            '        *) cmd_subcommands=""; cmd_options=""; cmd_valued=""; cmd_positionals="";;',
            "    esac",
            "}",
            "",
            '_financial_at() { printf "%s" "${words[$1]}"; }',
            "",
            "_financial_candidates() {",
            "    # Reads zsh's `words` and `CURRENT`; sets `candidates`.",
            "    setopt localoptions shwordsplit noksharrays",
            '    local first=2 current="$CURRENT"',
            _CANDIDATES.strip("\n"),
            "}",
            "",
            "_financial() {",
            "    local candidates",
            "    _financial_candidates",
            '    if [ "$candidates" = "@job" ]; then',
            '        candidates="$("${words[1]}" jobs names 2>/dev/null)"',
            "    fi",
            "    compadd -- ${=candidates}",
            "}",
            "",
            'if [ "${zsh_eval_context[-1]}" = loadautofunc ]; then',
            '    _financial "$@"',
            "else",
            "    compdef _financial financial",
            "fi",
            "",
        ]
    )


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell` (one of SHELLS)."""
    if shell == "bash":
        return bash_script(parser)
    if shell == "zsh":
        return zsh_script(parser)
    raise ValueError(f"shell {shell!r}: expected one of {', '.join(SHELLS)}")
