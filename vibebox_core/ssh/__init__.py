"""SSH into a session's guest: keys, connecting, the OpenSSH files, PTY streams, port forwards.

``keys`` (the keypairs, the pinned host key), ``connect`` (asyncssh while the guest boots, the
error translation), ``wait`` (a booting guest's lease, then its SSH, within the boot timeout),
``openssh`` (the ``ssh -F`` config of ``vibebox shell`` and
``vibebox ssh-config``), ``pty`` (the asyncssh PTY stream), ``forward`` (``[network] ports``).
"""
