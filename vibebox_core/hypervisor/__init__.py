"""The hypervisor: libvirt domains and networks, their XML, and what QEMU may reach."""
