"""Sessions: bringing one up, provisioning it, its live state, taking it down, running a command,
explaining it.

- :mod:`.start`: bring a session up and attach (:func:`~.start.ensure_running`, ``attach``), and
  the dashboard's terminal (:func:`~.start.open_shell`: a direct SSH PTY or the supervisor's
  relay, the port forwards in the background).
- :mod:`.boot`: the cold start of the VM (image, keys, seed share, disk, definitions);
  :mod:`.guest_secrets` what the guest gets for its ``[[secrets]]`` (placeholders, the CA).
- :mod:`.approve`: approving ``vibebox.toml`` and the start gate on it; :mod:`.steer`:
  ``vibebox allow``/``block`` (and the inspector's keys), an approval of one entry.
- :mod:`.running`: the session this process is attached to (:class:`~.running.RunningSession`).
- :mod:`.status`: the live state ``vibebox list`` and the session browser show.
- :mod:`.teardown`: stop, delete, recreate.
- :mod:`.execute`: one command in the guest on this process's stdio (``vibebox exec``).
- :mod:`.provision`: ``[provision] run`` once in a new session, and on demand
  (``vibebox provision``); :mod:`.provision_record` what ran (and whether the list changed
  since), :mod:`.provision_output` its output, bounded in the log and in the progress.
- :mod:`.checkpoint`: checkpoints of the guest's disk (``vibebox checkpoint``), internal qcow2
  snapshots of the instance disk; :mod:`.checkpoint_disk`: their qemu-img side and sizes;
  :mod:`.checkpoint_record`: the provision record each one brings back.
- :mod:`.explain` (:func:`~.explain.gather`, shared by ``vibebox explain`` and the inspector),
  :mod:`.explain_model` (its data) and :mod:`.explain_text` (its plain text).
- :mod:`.hypervisors`: one libvirt connection per URI for this process, at the approved URI.
"""
