# vibebox shell integration for bash (sourced from /etc/profile.d/vibebox.sh and
# /etc/bash.bashrc).
#
# `:new`, `:exit`, `:explain` and `:help` only print the OSC 7777 sequence
# ESC ] 7777 ; vibebox-command=<name> BEL; the vibebox terminal swallows it and acts. So they
# fire only when the shell really runs them, never when a program merely shows the text.

# Function names with ':' are a bash extension that POSIX mode refuses.
shopt -qo posix && return 0

if [ -z "${__VIBEBOX_SHELL_LOADED-}" ]; then
    __VIBEBOX_SHELL_LOADED=1

    __vibebox_command() { printf '\033]7777;vibebox-command=%s\007' "$1"; }
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
