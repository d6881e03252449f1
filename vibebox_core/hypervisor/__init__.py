"""The hypervisor: libvirt domains and networks, their XML, and what QEMU may reach.

- :mod:`.base`: the :class:`~.base.Hypervisor` protocol and the VM states the rest of vibebox
  sees; :mod:`.fake` is an in-memory one for tests and demos.
- :mod:`.libvirt`: the libvirt-python adapter (domains), over :mod:`.libvirt_networks`
  (networks and filters), :mod:`.libvirt_disks` (pause, resume and internal disk snapshots of
  a running VM, through QEMU's monitor) and :mod:`.libvirt_connection` (the connection itself).
- :mod:`.failure` and :mod:`.errors`: libvirt's error numbers, which component failed, and the
  table that turns a ``libvirtError`` into a :class:`~vibebox_core.errors.VMError` with a hint.
- :mod:`.names`, :mod:`.accelerator`, :mod:`.network_xml`, :mod:`.domain_xml`,
  :mod:`.virtiofs`, :mod:`.nwfilter`: pure builders (names, KVM or TCG, the ``<network>``,
  the ``<domain>``, the virtiofsd wrappers, the host fence ``<filter>``).
- :mod:`.console`: the serial console log's printable tail; :mod:`.access`: whether QEMU
  (``libvirt-qemu``) can reach a file, and the ``setfacl`` grant.

It imports only the kernel (errors, paths) and itself; the network policy, sessions and the
front ends sit above it.
"""
