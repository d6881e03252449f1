"""The network policy enforced on the host: the session network's definition and its filters.

- :mod:`.definition`: how the session's libvirt network and domain are defined for the policy
  (isolation, the nwfilter fence, the DNS forwarder, the guest's proxy environment).
- :mod:`.enforce`: the running proxy and DNS filter of a session, following approvals.
- :mod:`.proxy` (with :mod:`.proxytarget` and :mod:`.httphead`): the filtering HTTP proxy.
- :mod:`.dnsfilter`: the DNS filter behind dnsmasq.
- :mod:`.addresses`: the addresses a guest must never reach through the host.
- :mod:`.log`, :mod:`.ratelimit`, :mod:`.logsummary`: the decision log, its rate-limited
  writer and its counts.

The policy itself (entries, decisions, the approval digest) is :mod:`vibebox_core.config`.
"""
