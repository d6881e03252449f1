"""``vibebox doctor``: check the host the way a support engineer would, one line per fact.

Every check returns a :class:`~vibebox_core.doctor.checks.Check`: ``ok`` (✓), ``warn`` (!, true
but worth knowing, e.g. a nested host where ``accel=auto`` falls back to TCG), ``fail`` (✗, with
the exact fix) or ``skip`` (-, could not be checked because an earlier check failed). The command
exits 0 when no check failed; warnings do not fail it.

The checks themselves are pure functions of facts (timings, modes, listings) so the unit tests
feed them directly (:mod:`~vibebox_core.doctor.checks`, :mod:`~vibebox_core.doctor.leftovers`);
:func:`~vibebox_core.doctor.examine.run_doctor` gathers the facts from libvirt, the file system and
the session index. When a start fails, :func:`~vibebox_core.doctor.examine.diagnose_failure` runs
the cheap part (no timing, no listing) and appends what does not hold to the error's hint.

What is checked, in order: the configured URI is local (remote libvirt is not supported: the
disk, kernel and shares are local paths, the policy proxy sits on a bridge of the VM's host and
SSH goes to a private address there); libvirt answers, and its version; QEMU's capabilities
answer fast twice in a row (when ``/dev/kvm`` is closed to ``libvirt-qemu``, libvirt re-probes
QEMU on every call, 4-8 s each on the CI machines); KVM usable, or nested (TCG then); virtiofsd
present; QEMU can traverse to the image store and the project
(:mod:`vibebox_core.hypervisor.access`); the nwfilter driver; a free /24 in the session subnet
pool; disk space for images; the user may use libvirt (root, or the libvirt group); no
``vibebox-*`` domains, networks or filters left without a session.

Test seams (for e2e tests on a deliberately broken host): ``VIBEBOX_DOCTOR_VIRTIOFSD`` points
the virtiofsd check at another path, ``VIBEBOX_DOCTOR_POOL`` checks another subnet pool.
"""
