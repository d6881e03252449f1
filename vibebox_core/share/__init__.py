"""Serving virtiofs shares so they grant exactly what was approved (see :mod:`.guard`).

The C sources beside this file (``launcher.c``, ``shim.c``) are compiled on the host the first
time a session starts (:func:`vibebox_core.share.guard.build_guard`).
"""
