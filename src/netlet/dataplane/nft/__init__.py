"""The nftables kernel data plane: Services (kube-proxy's nftables mode) and network policy.

Layers, each a small module:

- `model`: an nftables transaction as a value (tables, chains, rules, sets, maps,
  elements; verbs add/create/flush/delete/insert/replace); `str(tx)` is exactly
  the `nft -f` input.
- `fake`: `FakeNft`, an in-memory ruleset that applies a transaction to a copy
  and swaps it in only when every operation succeeds; its canonical dump is the
  golden-file format.
- `runner`: `NftRunner`, one `nft -f -` inside a network namespace.
- `desired` + `sync`: the desired content of one table as a value, and the
  partial-sync state machine (compute -> diff -> render -> apply).
- `services` / `policy`: the renderers from the brains' IRs to desired tables.
- `node`: everything one node namespace gets, and its programming.

See docs/nftables.md for the layout and why it scales.
"""
