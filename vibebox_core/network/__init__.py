"""The network policy: rules, the guest fence, the filtering proxy, DNS and the log."""
