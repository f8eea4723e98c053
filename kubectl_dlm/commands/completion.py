"""`kubectl dlm completion`: shell completion scripts; and the hidden `__complete` they call.

The scripts are small: each one asks `kubectl-dlm __complete WORDS...` (cobra's protocol, see
kubectl_dlm/completion.py) and hands the candidates to the shell, so every shell completes the
same commands, flags, choices and VM names.
"""

from __future__ import annotations

import click

COMPLETION_EXAMPLES = """
\b
Set-up:
  # `kubectl dlm <TAB>`: kubectl >= 1.26 completes plugins, with its own completion loaded
  # (e.g. source <(kubectl completion bash)) and an executable kubectl_complete-dlm on PATH.
  # pip and pipx install kubectl_complete-dlm; after a krew install, add it with:
  kubectl dlm completion --kubectl-helper > "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-dlm"
  chmod +x "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-dlm"
\b
  # `kubectl-dlm <TAB>`, the plugin run directly. bash, in ~/.bashrc:
  source <(kubectl dlm completion bash)
  # zsh, in ~/.zshrc after compinit:
  source <(kubectl dlm completion zsh)
  # fish:
  kubectl dlm completion fish > ~/.config/fish/completions/kubectl-dlm.fish
"""

KUBECTL_HELPER = """\
#!/bin/sh
# kubectl >= 1.26 runs this to complete `kubectl dlm ...` (see `kubectl dlm completion --help`).
exec kubectl-dlm __complete "$@"
"""

BASH = r"""# bash completion for kubectl-dlm. Load it with: source <(kubectl dlm completion bash)
_kubectl_dlm() {
    local cur words cword
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        _get_comp_words_by_ref -n "=:" cur words cword
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    local out directive line
    out=$("${words[0]}" __complete "${words[@]:1:cword-1}" "$cur" 2>/dev/null) || return
    directive=${out##*:}
    [[ $directive =~ ^[0-9]+$ ]] || return
    COMPREPLY=()
    (( directive & 1 )) && return
    while IFS='' read -r line; do
        [[ -n $line ]] && COMPREPLY+=("${line%%$'\t'*}")
    done <<< "${out%:*}"
    if (( ${#COMPREPLY[@]} )); then
        (( directive & 2 )) && compopt -o nospace 2>/dev/null
        declare -F __ltrim_colon_completions >/dev/null 2>&1 && __ltrim_colon_completions "$cur"
    elif (( directive & 16 )); then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "${cur#*=}")
    elif (( ! (directive & 4) )); then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "${cur#*=}")
    fi
}
complete -F _kubectl_dlm kubectl-dlm
"""

ZSH = r"""#compdef kubectl-dlm
# zsh completion for kubectl-dlm. Load it with: source <(kubectl dlm completion zsh)
_kubectl_dlm() {
    local -a lines candidates
    local out directive line value prefix=''
    out=$(${words[1]} __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${lines[-1]#:}
    [[ $directive == <-> ]] || return 1
    (( directive & 1 )) && return 1
    [[ ${words[CURRENT]} == -*=* ]] && prefix="${words[CURRENT]%%=*}="
    for line in "${(@)lines[1,-2]}"; do
        [[ -z $line ]] && continue
        value=${line%%$'\t'*}
        if [[ $line == *$'\t'* ]]; then
            candidates+=("${value//:/\\:}:${line#*$'\t'}")
        else
            candidates+=("${value//:/\\:}")
        fi
    done
    if (( ${#candidates} )); then
        if (( directive & 2 )); then
            _describe -t values 'kubectl-dlm' candidates -P "$prefix" -S ''
        else
            _describe -t values 'kubectl-dlm' candidates -P "$prefix"
        fi
    elif (( directive & 16 )); then
        _files -/
    elif (( ! (directive & 4) )); then
        _files
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautoload ]]; then
    _kubectl_dlm "$@"
else
    compdef _kubectl_dlm kubectl-dlm
fi
"""

FISH = r"""# fish completion for kubectl-dlm.
# Install it with: kubectl dlm completion fish > ~/.config/fish/completions/kubectl-dlm.fish
function __kubectl_dlm_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l out ($tokens[1] __complete $tokens[2..-1] $current 2>/dev/null)
    or return
    set -l directive (string replace -r '^:' '' -- $out[-1])
    string match -qr '^[0-9]+$' -- $directive
    or return
    set -e out[-1]
    if test (math "$directive % 2") -eq 1
        return
    end
    set -l prefix ''
    if string match -qr -- '^-[^=]*=' $current
        set prefix (string replace -r -- '=.*' '=' $current)
    end
    if test (count $out) -gt 0
        for line in $out
            printf '%s%s\n' $prefix $line
        end
    else if test (math "floor($directive / 16) % 2") -eq 1
        __fish_complete_directories $current
    else if test (math "floor($directive / 4) % 2") -eq 0
        __fish_complete_path $current
    end
end
complete -c kubectl-dlm -f -a '(__kubectl_dlm_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


@click.command(epilog=COMPLETION_EXAMPLES)
@click.argument("shell", type=click.Choice(sorted(SCRIPTS)), required=False, metavar="[bash|zsh|fish]")
@click.option("--kubectl-helper", is_flag=True,
              help="Print the kubectl_complete-dlm script that kubectl >= 1.26 runs to complete `kubectl dlm`.")
def completion(shell, kubectl_helper) -> None:
    """Print a shell completion script (bash, zsh, fish), or kubectl's completion helper.

    Completion knows the commands, flags and their choices, kubeconfig contexts, and namespaces
    and VM names read from the cluster that the flags typed so far select (or VM names from the
    file of -f).
    """
    from kubectl_dlm import errors

    if kubectl_helper == bool(shell):
        raise errors.UsageError("name one shell (bash, zsh, fish), or pass --kubectl-helper",
                                "example: kubectl dlm completion bash")
    click.echo(KUBECTL_HELPER if kubectl_helper else SCRIPTS[shell], nl=False)


@click.command("__complete", hidden=True, add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def complete(words) -> None:
    """Cobra's completion protocol (used by the completion scripts and kubectl_complete-dlm)."""
    from kubectl_dlm.completion import respond

    respond(list(words))
