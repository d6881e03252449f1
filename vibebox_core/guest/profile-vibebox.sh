# vibebox shell integration for login shells. The functions need bash; other shells skip it.
if [ -n "${BASH_VERSION-}" ] && [ -r /usr/lib/vibebox/shell.bash ]; then
    . /usr/lib/vibebox/shell.bash
fi
