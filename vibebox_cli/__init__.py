"""The ``vibebox`` host command line; only ``commands/attach.py`` opens the dashboard."""
