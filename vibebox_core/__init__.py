"""vibebox core: sessions, config, images, libvirt VMs, SSH and the per-session supervisor.

This package never imports Textual or Rich; the dashboard in ``vibebox_tui`` only presents
what lives here.
"""

__version__ = "0.1.0"
