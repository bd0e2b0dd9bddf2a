"""Shell completion: `letta-apply completion bash|zsh|fish` prints a script generated from the
command line's own parser, so that a new command or option completes without anyone listing it.

What an option's value completes is read from the parser too: its `choices`; a metavar
`a|b` (those words); PATH, FILE or PLAN (file names); ADDRESS (the manifest's resource
addresses). Addresses come from the hidden command `letta-apply __complete-addresses`, given the
`-f`, `--var` and `--var-file` options already on the line: it reads the manifest, never talks to
a server, and prints nothing at all when it cannot read it.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NoReturn, TextIO

from ..pipeline import declared_addresses
from .arguments import EXIT_ERROR, EXIT_OK, SHELLS, load_options, options_of

ADDRESSES_COMMAND = "__complete-addresses"
PROG = "letta-apply"

ValueKind = Literal["none", "files", "addresses", "words"]
_FILE_METAVARS = ("PATH", "FILE", "PLAN")


@dataclass(frozen=True)
class Values:
    """What completes a value: nothing, file names, addresses, or these words."""

    kind: ValueKind = "none"
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # "-f", "--file"
    help: str
    takes_value: bool
    repeatable: bool
    values: Values
    metavar: str


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    flags: tuple[Flag, ...]
    positional: Flag | None  # the first positional argument, if any


@dataclass(frozen=True)
class Spec:
    """The command line as completion sees it."""

    flags: tuple[Flag, ...]  # before the command: --version, --help
    commands: tuple[Command, ...]
    # The options __complete-addresses takes (the ones that load a manifest), by what they take.
    forwarded_values: tuple[str, ...]
    forwarded_flags: tuple[str, ...]


# -- reading the parser -----------------------------------------------------------------------


# Defaults are left out of the descriptions: some come from the environment (LETTA_BASE_URL), and
# a script must not depend on where it was generated.
_DEFAULT = re.compile(r"\s*\(default %\(default\)s\)|; default %\(default\)s")


def _help(action: argparse.Action) -> str:
    text = _DEFAULT.sub("", action.help or "")
    with contextlib.suppress(KeyError, TypeError, ValueError):
        text = text % {"prog": PROG}
    return " ".join(text.split())


def _values(action: argparse.Action) -> Values:
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return Values("words", tuple(str(c) for c in action.choices))
    metavar = action.metavar if isinstance(action.metavar, str) else ""
    if "|" in metavar:
        return Values("words", tuple(metavar.split("|")))
    if metavar in _FILE_METAVARS:
        return Values("files")
    if metavar == "ADDRESS":
        return Values("addresses")
    return Values()


def _flag(action: argparse.Action) -> Flag:
    takes_value = action.nargs != 0
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return Flag(
        names=tuple(action.option_strings) or (action.dest,),
        help=_help(action),
        takes_value=takes_value,
        repeatable=isinstance(action, argparse._AppendAction),
        values=_values(action) if takes_value else Values(),
        metavar=metavar,
    )


def _flags(parser: argparse.ArgumentParser) -> tuple[Flag, ...]:
    return tuple(
        _flag(a) for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
    )


def spec(parser: argparse.ArgumentParser) -> Spec:
    """Commands, options and what their values complete, read from `parser`."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    commands = []
    for name, p in sub.choices.items():
        positionals = [a for a in p._actions if not a.option_strings]
        commands.append(
            Command(
                name=name,
                help=" ".join(helps.get(name, "").split()),
                flags=_flags(p),
                positional=_flag(positionals[0]) if positionals else None,
            )
        )
    loader = _flags(addresses_parser())
    return Spec(
        flags=_flags(parser),
        commands=tuple(commands),
        forwarded_values=tuple(n for f in loader if f.takes_value for n in f.names),
        forwarded_flags=tuple(n for f in loader if not f.takes_value for n in f.names),
    )


# -- the hidden command: addresses of a manifest ----------------------------------------------


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print usage on stderr: completion must print nothing.
        raise ValueError(message)


def addresses_parser() -> argparse.ArgumentParser:
    """The options `__complete-addresses` takes: those that say which manifest to load."""
    p = _QuietParser(prog=f"{PROG} {ADDRESSES_COMMAND}", add_help=False)
    load_options(p)
    return p


def complete_addresses(argv: Sequence[str], out: TextIO) -> int:
    """Print the addresses `--target` accepts for the manifest the options name, one a line.
    Runs on every press of Tab: it sends no request, and on any problem (no -f yet, a manifest
    that does not load) it prints nothing, so the shell simply offers no address."""
    try:
        args, _ = addresses_parser().parse_known_args(list(argv))
        if not args.file:
            return EXIT_ERROR
        addresses = declared_addresses(args.file, options_of(args))
    except Exception:
        return EXIT_ERROR
    # Never a secret: addresses are keys, which may not hold sensitive values.
    out.write("".join(f"{a}\n" for a in addresses))
    return EXIT_OK


# -- the scripts --------------------------------------------------------------------------------


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for `shell`."""
    s = spec(parser)
    if shell == "bash":
        return _bash(s)
    if shell == "zsh":
        return _zsh(s)
    if shell == "fish":
        return _fish(s)
    raise ValueError(f"no completion for shell {shell!r}; choose from {', '.join(SHELLS)}")


def _fn(name: str) -> str:
    return name.replace("-", "_")


def _names(flags: Sequence[Flag]) -> str:
    return " ".join(n for f in flags for n in f.names)


# bash -------------------------------------------------------------------------------------------

_BASH_HEAD = """\
# letta-apply completion for bash, generated by `letta-apply completion bash`.
# Enable it in ~/.bashrc:  eval "$(letta-apply completion bash)"
# or, with the bash-completion package, once for your user:
#   letta-apply completion bash > ~/.local/share/bash-completion/completions/letta-apply

# The words in $1 that start with the word being completed.
_letta_apply_words() {
    local IFS=$' \\t\\n'
    COMPREPLY=($(compgen -W "$1" -- "$cur"))
}

_letta_apply_files() {
    compopt -o filenames 2>/dev/null
    local IFS=$'\\n'
    COMPREPLY=($(compgen -f -- "$cur"))
}

# A word as the command will receive it, for the usual cases (quotes, backslashes, ~/).
_letta_apply_unquote() {
    local v=$1
    case $v in
        \\'*\\') v=${v:1:${#v}-2} ;;
        \\"*\\") v=${v:1:${#v}-2} ;;
        *) v=${v//\\\\/} ;;
    esac
    [[ $v == "~/"* ]] && v=$HOME/${v:2}
    printf '%s' "$v"
}

# The manifest's addresses, from the options on the line that say which manifest it is.
_letta_apply_addresses() {
    local -a args=() found=()
    local i w v a q
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            __FORWARDED_VALUES__)
                ((i + 1 < COMP_CWORD)) || continue
                v=${COMP_WORDS[i + 1]}
                if [[ $v == = ]] && ((i + 2 < COMP_CWORD)); then ((i++)); v=${COMP_WORDS[i + 1]}; fi
                args+=("$w" "$(_letta_apply_unquote "$v")")
                ((i++))
                ;;
            __FORWARDED_FLAGS__) args+=("$w") ;;
        esac
    done
    ((${#args[@]})) || return 0
    local prog
    prog=$(_letta_apply_unquote "${COMP_WORDS[0]}")
    local IFS=$'\\n'
    found=($("$prog" __ADDRESSES__ "${args[@]}" 2>/dev/null))
    local want=${cur//\\\\/}
    want=${want#[\\'\\"]}
    for a in "${found[@]}"; do
        [[ $a == "$want"* ]] || continue
        if [[ $cur == [\\'\\"]* ]]; then
            COMPREPLY+=("$a")
        else
            printf -v q '%q' "$a"
            COMPREPLY+=("$q")
        fi
    done
}

_letta_apply() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= i
    COMPREPLY=()
    # bash splits `--option=value` at `=`: complete the value as if written `--option value`.
    if [[ $cur == = ]]; then
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        cur=
    elif ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[COMP_CWORD - 1]} == = ]]; then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    elif ((COMP_CWORD > 0)); then
        prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi
    # The command is the first word that is not an option (none before it takes a value).
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} != -* ]]; then
            cmd=${COMP_WORDS[i]}
            break
        fi
    done
    case $cmd in
"""

_BASH_TAIL = """\
    esac
}

complete -F _letta_apply letta-apply
"""


def _bash_values(values: Values) -> str:
    if values.kind == "files":
        return "_letta_apply_files"
    if values.kind == "addresses":
        return "_letta_apply_addresses"
    if values.kind == "words":
        return f'_letta_apply_words "{" ".join(values.words)}"'
    return ":"  # a value with nothing to offer: not the options either


def _bash_case(
    label: str, flags: Sequence[Flag], positional: Flag | None, fallback: str
) -> list[str]:
    lines = [f"        {label})"]
    by_action: dict[str, list[str]] = {}
    for f in flags:
        if f.takes_value:
            by_action.setdefault(_bash_values(f.values), []).extend(f.names)
    if by_action:
        lines.append("            case $prev in")
        for action, names in by_action.items():
            lines.append(f"                {'|'.join(names)}) {action}; return ;;")
        lines.append("            esac")
    options = f'_letta_apply_words "{_names(flags)}"'
    if positional is not None and positional.values.kind != "none":
        fallback = _bash_values(positional.values)
    if fallback == options:
        lines.append(f"            {options}")
    else:
        lines.append(f"            if [[ $cur == -* ]]; then {options}; else {fallback}; fi")
    lines.append("            ;;")
    return lines


def _bash(s: Spec) -> str:
    head = (
        _BASH_HEAD.replace("__FORWARDED_VALUES__", "|".join(s.forwarded_values))
        .replace("__FORWARDED_FLAGS__", "|".join(s.forwarded_flags))
        .replace("__ADDRESSES__", ADDRESSES_COMMAND)
    )
    lines: list[str] = []
    for c in s.commands:
        lines += _bash_case(
            c.name, c.flags, c.positional, f'_letta_apply_words "{_names(c.flags)}"'
        )
    commands = " ".join(c.name for c in s.commands)
    lines += _bash_case('""', s.flags, None, f'_letta_apply_words "{commands}"')
    lines.append("        *) ;;  # an unknown command: nothing to offer")
    return head + "\n".join(lines) + "\n" + _BASH_TAIL


# zsh --------------------------------------------------------------------------------------------


def _zsh_quote(text: str, special: str = "[]:") -> str:
    """`text` inside a single-quoted _arguments spec: what _arguments reads specially escaped
    (brackets in a description, colons in a message), single quotes for the shell."""
    for ch in ("\\", *special):
        text = text.replace(ch, "\\" + ch)
    return text.replace("'", "'\\''")


def _zsh_action(values: Values) -> str:
    if values.kind == "files":
        return "_files"
    if values.kind == "addresses":
        return "_letta_apply_addresses"
    if values.kind == "words":
        return "(" + " ".join(values.words) + ")"
    return " "


def _zsh_flag(f: Flag) -> str:
    names = f.names
    help_ = _zsh_quote(f.help, "[]")
    if f.names in (("-h", "--help"), ("--version",)):
        prefix = "'(- *)'"
    elif f.repeatable:
        prefix = "'*'"
    elif len(names) > 1:
        prefix = f"'({' '.join(names)})'"
    else:
        prefix = ""
    name_part = "{" + ",".join(names) + "}" if len(names) > 1 else names[0]
    value = ""
    if f.takes_value:
        value = f":{_zsh_quote(f.metavar.lower())}:{_zsh_action(f.values)}"
    return f"{prefix}{name_part}'[{help_}]{value}'"


def _zsh(s: Spec) -> str:
    out = [
        "#compdef letta-apply",
        "# letta-apply completion for zsh, generated by `letta-apply completion zsh`.",
        "# Enable it: letta-apply completion zsh > ~/.zfunc/_letta_apply, with ~/.zfunc in $fpath",
        '# before compinit; or, after compinit in ~/.zshrc: eval "$(letta-apply completion zsh)"',
        "",
        "# The manifest's addresses, from the options on the line that say which manifest it is.",
        "_letta_apply_addresses() {",
        "  local -a args found",
        "  local i w",
        "  for (( i = 2; i < CURRENT; i++ )); do",
        "    w=${words[i]}",
        "    case $w in",
        f"      ({'|'.join(s.forwarded_values)})",
        "        if (( i + 1 < CURRENT )); then args+=($w ${(Q)words[i+1]}); (( i++ )); fi ;;",
        f"      ({'|'.join(f'{n}=*' for n in s.forwarded_values)}|{'|'.join(s.forwarded_flags)})",
        "        args+=(${(Q)w}) ;;",
        "    esac",
        "  done",
        "  (( $#args )) || return 1",
        f'  found=(${{(f)"$($_letta_apply_prog {ADDRESSES_COMMAND} $args 2>/dev/null)"}})',
        "  local expl",
        "  _wanted addresses expl address compadd -a found",
        "}",
        "",
        "_letta_apply_commands() {",
        "  local -a commands",
        "  commands=(",
    ]
    for c in s.commands:
        out.append(f"    '{c.name}:{_zsh_quote(c.help, '')}'")
    out += [
        "  )",
        "  _describe -t commands 'letta-apply command' commands",
        "}",
        "",
    ]
    for c in s.commands:
        out.append(f"_letta_apply_cmd_{_fn(c.name)}() {{")
        out.append("  _arguments -S \\")
        for f in c.flags:
            out.append(f"    {_zsh_flag(f)} \\")
        if c.positional is not None:
            p = c.positional
            out.append(f"    '1:{_zsh_quote(p.metavar.lower())}:{_zsh_action(p.values)}' \\")
        out[-1] = out[-1].removesuffix(" \\")
        out.append("}")
        out.append("")
    out += [
        "_letta_apply() {",
        "  local curcontext=$curcontext state state_descr line ret=1",
        "  typeset -A opt_args",
        "  # The program as typed, to ask it for addresses (words shift below).",
        "  local _letta_apply_prog=${(Q)words[1]}",
        "  _arguments -C \\",
    ]
    for f in s.flags:
        out.append(f"    {_zsh_flag(f)} \\")
    out += [
        "    '1:command:_letta_apply_commands' \\",
        "    '*::argument:->argument' && ret=0",
        "  case $state in",
        "    (argument)",
        "      curcontext=${curcontext%:*:*}:letta-apply-$words[1]:",
        "      case $words[1] in",
    ]
    for c in s.commands:
        out.append(f"        ({c.name}) _letta_apply_cmd_{_fn(c.name)} && ret=0 ;;")
    out += [
        "      esac",
        "      ;;",
        "  esac",
        "  return ret",
        "}",
        "",
        # Autoloaded from $fpath, this file is the function's body: run it; sourced, register it.
        'if [[ "$funcstack[1]" == "_letta_apply" ]]; then',
        '  _letta_apply "$@"',
        "else",
        "  compdef _letta_apply letta-apply",
        "fi",
        "",
    ]
    return "\n".join(out)


# fish -------------------------------------------------------------------------------------------


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_flag(condition: str, f: Flag) -> str:
    parts = ["complete -c letta-apply", f"-n {_fish_quote(condition)}"]
    for n in f.names:
        parts.append(f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}")
    if f.takes_value:
        if f.values.kind == "files":
            parts.append("-r -F")
        elif f.values.kind == "addresses":
            parts.append("-x -a '(__letta_apply_addresses)'")
        elif f.values.kind == "words":
            parts.append(f"-x -a {_fish_quote(' '.join(f.values.words))}")
        else:
            parts.append("-x")
    if f.help:
        parts.append(f"-d {_fish_quote(f.help)}")
    return " ".join(parts)


def _fish(s: Spec) -> str:
    values = " ".join(s.forwarded_values)
    with_equals = " ".join(f"'{n}=*'" for n in s.forwarded_values)
    flags = " ".join(s.forwarded_flags)
    out = [
        "# letta-apply completion for fish, generated by `letta-apply completion fish`.",
        "# Enable it: letta-apply completion fish > ~/.config/fish/completions/letta-apply.fish",
        "",
        "# The manifest's addresses, from the options on the line that say which manifest it is.",
        "function __letta_apply_addresses",
        "    set -l tokens (commandline -opc)",
        "    set -l n (count $tokens)",
        "    set -l args",
        "    set -l i 2",
        "    while test $i -le $n",
        "        set -l w $tokens[$i]",
        "        switch $w",
        f"            case {values}",
        "                if test $i -lt $n",
        "                    set i (math $i + 1)",
        "                    set -a args $w $tokens[$i]",
        "                end",
        f"            case {with_equals} {flags}",
        "                set -a args $w",
        "        end",
        "        set i (math $i + 1)",
        "    end",
        "    test (count $args) -gt 0; or return 1",
        f"    command $tokens[1] {ADDRESSES_COMMAND} $args 2>/dev/null",
        "end",
        "",
        "complete -c letta-apply -f",
    ]
    for f in s.flags:
        out.append(_fish_flag("__fish_use_subcommand", f))
    for c in s.commands:
        out.append(
            f"complete -c letta-apply -n __fish_use_subcommand -a {c.name} -d {_fish_quote(c.help)}"
        )
    for c in s.commands:
        condition = f"__fish_seen_subcommand_from {c.name}"
        for f in c.flags:
            out.append(_fish_flag(condition, f))
        p = c.positional
        if p is not None and p.values.kind == "files":
            out.append(f"complete -c letta-apply -n {_fish_quote(condition)} -F")
        elif p is not None and p.values.kind == "words":
            words = _fish_quote(" ".join(p.values.words))
            out.append(f"complete -c letta-apply -n {_fish_quote(condition)} -a {words}")
    return "\n".join(out) + "\n"
