"""The network policy enforced on the host: the session network's definition and its filters.

- :mod:`.definition`: how the session's libvirt network and domain are defined for the policy
  (isolation, the nwfilter fence, the DNS forwarder, the guest's proxy environment).
- :mod:`.enforce`: the running side of a session's policy, built from :mod:`.enforcer` (its
  proxy and DNS filter) and :mod:`.follow` (the approvals they follow while it runs).
- :mod:`.proxy` (with :mod:`.proxytarget` and :mod:`.httphead`): the filtering HTTP proxy;
  :mod:`.intercept` (with :mod:`.http1` and :mod:`.tlsca`) terminates TLS for the hosts that
  carry secrets: their placeholders and vault are :mod:`.secrets`, their values are read on
  the host by :mod:`.sources`.
- :mod:`.dnsfilter`: the DNS filter behind dnsmasq.
- :mod:`.addresses`: the addresses a guest must never reach through the host.
- :mod:`.log`, :mod:`.ratelimit`, :mod:`.logsummary`: the decision log, its rate-limited
  writer and its counts.

The policy itself (entries, decisions, the approval digest) is :mod:`vibebox_core.config`.
"""
