"""A project's ``vibebox.toml`` and what the host approved of it.

- :mod:`.schema`: the tables as frozen dataclasses, their limits and defaults.
- :mod:`.load`: reading the file safely and validating it; :mod:`.validate` checks each
  table, key and value, :mod:`.mounts` the mount rules, :mod:`.lines` points errors at lines.
- :mod:`.edit`: changing one value with tomlkit, comments kept.
- :mod:`.snapshot`: the approved values, kept outside the project; :mod:`.approval`: the file
  reviewed against them, and what is in force.
- :mod:`.grants`, :mod:`.policy`, :mod:`.hostnames`: what a config grants the guest, the
  network policy it describes, and the host names that policy reads.
"""
