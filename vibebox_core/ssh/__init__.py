"""SSH into a session's guest: keys, connecting, PTY streams and port forwards."""
