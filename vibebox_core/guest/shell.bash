# vibebox shell integration for bash (sourced from /etc/profile.d/vibebox.sh and
# /etc/bash.bashrc).
#
# `:new`, `:exit`, `:explain` and `:help` only print the OSC 7777 sequence
# ESC ] 7777 ; vibebox-command=<name>;<token> BEL; the vibebox terminal swallows it and acts.
# <token> is the host's fresh secret for this terminal (VIBEBOX_COMMAND_TOKEN, sent by vibebox
# with the SSH session): the host ignores a command without it, so a program that merely
# prints the same bytes (`cat` of a file) triggers nothing. The token stays in a variable of
# this shell only: not exported, and removed from the environment before any program runs, so
# children, their files and nested shells never carry it (`:new` in a nested shell does not
# work, by design).

# Take the token out of the environment first thing, whatever mode this shell is in.
if [ -n "${VIBEBOX_COMMAND_TOKEN+set}" ]; then
    __vibebox_token=$VIBEBOX_COMMAND_TOKEN
    unset VIBEBOX_COMMAND_TOKEN
    export -n __vibebox_token 2>/dev/null # even under `set -a`
    case $__vibebox_token in *[!0-9a-f]* | '') __vibebox_token='' ;; esac
fi

# Function names with ':' are a bash extension that POSIX mode refuses.
shopt -qo posix && return 0

if [ -z "${__VIBEBOX_SHELL_LOADED-}" ]; then
    __VIBEBOX_SHELL_LOADED=1

    __vibebox_command() {
        if [ -z "${__vibebox_token-}" ]; then
            printf 'vibebox: :%s works only in the dashboard'"'"'s own shell\n' "$1" >&2
            return 1
        fi
        printf '\033]7777;vibebox-command=%s;%s\007' "$1" "$__vibebox_token"
    }
    :new() { __vibebox_command new; }
    :exit() { __vibebox_command exit; }
    :explain() { __vibebox_command explain; }
    :help() { __vibebox_command help; }
fi

# Login shells start in the project (vibebox-setup writes its path at boot).
if shopt -q login_shell && [ "$PWD" = "$HOME" ] && [ -r /run/vibebox/project-path ]; then
    read -r __vibebox_project </run/vibebox/project-path
    if [ -n "$__vibebox_project" ] && [ -d "$__vibebox_project" ]; then
        cd "$__vibebox_project" || true
    fi
    unset __vibebox_project
fi
