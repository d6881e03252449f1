"""The seam between the dashboard and what drives VMs: the protocol, the core, a fake, the IO
thread the early connection lives on."""
