"""The network policy brain: NetworkPolicy v1 and the network-policy-api tiers.

`compile_program(state, dns)` builds the policy program (program.py, the IR a
kernel backend renders); `PolicyEngine(program)` answers per-connection
verdicts with explanations; `matrix.compute_matrix` gives the connectivity
matrix on equivalence classes; `lint.policy_findings` feeds `netlet check`;
`changes.diff_programs` gives a backend the set elements to sync.
"""
