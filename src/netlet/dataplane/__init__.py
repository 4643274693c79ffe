"""Backends that act on the brains' decisions on a real Linux node.

`lab/` builds the node lab (network namespaces wired by CNI plugins, a test
workload, probes); `nft/` and `proxy/` program nftables and serve Gateways.
This package may do I/O; the brains below it never do. Its `__init__` stays
empty of imports so that light processes (the lab's workload supervisor) start
fast.
"""
