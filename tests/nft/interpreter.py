"""An interpreter for the rulesets netlet renders: a packet in, every possible fate out.

Test oracle glue: it runs a new connection through the chains of a `FakeNft`
(what the renderers produced) the way netfilter would on one node - filter
prerouting, nat prerouting, then filter input or forward, then nat postrouting -
and returns each possible outcome (`numgen random` branches into all its
values). Tests compare it with the brains' own evaluators (netlet.services.flow,
netlet.policy.verdict) over many flows, without root.

It understands the vocabulary the renderers write, nothing more; anything else
raises `Unsupported`, so a renderer change cannot silently go unchecked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from netlet.dataplane.nft.fake import FakeNft, FakeTable
from netlet.dataplane.nft.model import Family, Hook

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Unsupported(Exception):
    pass


@dataclass(frozen=True)
class Packet:
    src: Address
    dst: Address
    proto: str  # tcp, udp, sctp
    port: int
    mark: int = 0
    ct_mark: int = 0
    dnat: tuple[Address, int] | None = None
    masquerade: bool = False

    @property
    def daddr(self) -> Address:
        return self.dnat[0] if self.dnat else self.dst

    @property
    def dport(self) -> int:
        return self.dnat[1] if self.dnat else self.port


@dataclass(frozen=True)
class Fate:
    verdict: str  # accept, drop, reject
    packet: Packet
    trail: tuple[str, ...] = ()


@dataclass
class Node:
    """The tables of one node and the addresses `fib ... type local` sees."""

    kernel: FakeNft
    local: frozenset[Address] = field(default_factory=frozenset)
    family: Family = Family.IP

    def table(self, name: str) -> FakeTable | None:
        return self.kernel.table(self.family, name)


def _value(text: str) -> Address | int | str:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    return int(text, 0) if text[:1].isdigit() else text


def _part_matches(part: str, value: Address | int | str) -> bool:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        if "-" in part:
            lo, hi = part.split("-")
            return ipaddress.ip_address(lo) <= value <= ipaddress.ip_address(hi)
        return value in ipaddress.ip_network(part, strict=False)
    if isinstance(value, int):
        if "-" in part:
            lo, hi = part.split("-")
            return int(lo) <= value <= int(hi)
        return int(part, 0) == value
    return part == value


def _lookup(
    table: FakeTable, name: str, key: tuple[Address | int | str, ...]
) -> tuple[str, ...] | bool | None:
    """The value of `key` in map `name` (a tuple), True for a set hit, None for a miss."""
    elems = table.elements.get(name)
    if elems is None:
        raise Unsupported(f"no set {name}")
    for ekey, elem in elems.items():
        if len(ekey) == len(key) and all(
            _part_matches(p, v) for p, v in zip(ekey, key, strict=True)
        ):
            return elem.value if elem.value is not None else True
    return None


class _Eval:
    def __init__(self, node: Node, table: FakeTable) -> None:
        self.node = node
        self.table = table

    # Expressions ----------------------------------------------------------------------

    def field(self, tokens: list[str], i: int, pkt: Packet) -> tuple[Address | int | str, int]:
        """One selector: ip saddr, ip daddr, meta l4proto, th dport, ct mark."""
        t = tokens[i]
        if t in ("ip", "ip6") and tokens[i + 1] in ("saddr", "daddr"):
            return (pkt.src if tokens[i + 1] == "saddr" else pkt.daddr), i + 2
        if t == "meta" and tokens[i + 1] == "l4proto":
            return pkt.proto, i + 2
        if t == "th" and tokens[i + 1] == "dport":
            return pkt.dport, i + 2
        if t == "ct" and tokens[i + 1] == "mark":
            return pkt.ct_mark, i + 2
        raise Unsupported(" ".join(tokens[i : i + 3]))

    def key(
        self, tokens: list[str], i: int, pkt: Packet
    ) -> tuple[tuple[Address | int | str, ...], int]:
        parts = []
        value, i = self.field(tokens, i, pkt)
        parts.append(value)
        while i < len(tokens) and tokens[i] == ".":
            value, i = self.field(tokens, i + 1, pkt)
            parts.append(value)
        return tuple(parts), i

    def run(
        self, chain: str, pkt: Packet, trail: tuple[str, ...] = ()
    ) -> list[Fate | tuple[str, Packet, tuple[str, ...]]]:
        """Fates of `pkt` through `chain`: final (Fate) or ("return", packet) to the caller."""
        fake_chain = self.table.chains.get(chain)
        if fake_chain is None:
            raise Unsupported(f"no chain {chain}")
        states: list[tuple[Packet, tuple[str, ...]]] = [(pkt, (*trail, chain))]
        out: list[Fate | tuple[str, Packet, tuple[str, ...]]] = []
        for rule in fake_chain.rules:
            text = rule.text.split(' comment "')[0]
            nxt: list[tuple[Packet, tuple[str, ...]]] = []
            for p, tr in states:
                for result in self.rule(text.split(), p, tr):
                    if isinstance(result, Fate) or result[0] == "return":
                        out.append(result)
                    else:
                        nxt.append((result[1], result[2]))
            states = nxt
            if not states:
                break
        out.extend(("return", p, tr) for p, tr in states)
        return out

    def rule(
        self, tokens: list[str], pkt: Packet, trail: tuple[str, ...]
    ) -> list[Fate | tuple[str, Packet, tuple[str, ...]]]:
        """Fates of one rule: Fate, ("return", p), or ("next", p) to go on in the chain."""
        i = 0
        while i < len(tokens):
            t = tokens[i]
            two = tokens[i : i + 3]
            if two[:2] == ["ct", "state"]:
                if tokens[i + 2] != "new":
                    return [("next", pkt, trail)]  # only new connections are evaluated
                i += 3
            elif two == ["ct", "mark", "set"] and tokens[i + 3 : i + 6] == ["ct", "mark", "map"]:
                # ct mark set ct mark map @m: a miss ends the rule (nft(8), MAPS).
                moved = _lookup(self.table, tokens[i + 6][1:], (pkt.ct_mark,))
                if moved is None:
                    return [("next", pkt, trail)]
                assert isinstance(moved, tuple)
                pkt = replace(pkt, ct_mark=int(moved[0]))
                i += 7
            elif two == ["ct", "mark", "set"]:
                if (
                    tokens[i + 3 : i + 6] != ["numgen", "random", "mod"]
                    or tokens[i + 7] != "offset"
                ):
                    raise Unsupported(" ".join(tokens))
                n, base = int(tokens[i + 6]), int(tokens[i + 8])
                rest = tokens[i + 9 :]
                out: list[Fate | tuple[str, Packet, tuple[str, ...]]] = []
                for slot in range(base, base + n):
                    out.extend(self.rule(rest, replace(pkt, ct_mark=slot), trail))
                return out
            elif two == ["meta", "mark", "&"]:
                # meta mark & X == Y
                mask, want = int(tokens[i + 3], 0), int(tokens[i + 5], 0)
                if (pkt.mark & mask) != want:
                    return [("next", pkt, trail)]
                i += 6
            elif two == ["meta", "mark", "set"]:
                if tokens[i + 3 : i + 5] != ["meta", "mark"]:
                    raise Unsupported(" ".join(tokens))
                op, value = tokens[i + 5], int(tokens[i + 6], 0)
                pkt = replace(pkt, mark=pkt.mark | value if op == "|" else pkt.mark ^ value)
                i += 7
            elif two[:2] == ["meta", "l4proto"] and tokens[i + 2] != ".":
                i, ok = self.l4proto(tokens, i + 2, pkt)
                if not ok:
                    return [("next", pkt, trail)]
            elif t in ("ip", "ip6", "meta", "th", "ct"):
                key, i = self.key(tokens, i, pkt)
                if tokens[i] == "vmap":
                    verdict = _lookup(self.table, tokens[i + 1][1:], key)
                    if verdict is None:
                        return [("next", pkt, trail)]
                    assert isinstance(verdict, tuple)
                    return self.verdict(" ".join(verdict).split(), pkt, trail)
                negate = tokens[i] == "!="
                if negate:
                    i += 1
                if self.compare(tokens[i], key) == negate:
                    return [("next", pkt, trail)]
                i += 1
            elif t in ("tcp", "udp", "sctp") and tokens[i + 1] == "dport":
                if pkt.proto != t or pkt.dport != int(tokens[i + 2]):
                    return [("next", pkt, trail)]
                i += 3
            elif t == "fib" and tokens[i + 1 : i + 4] == ["saddr", "type", "local"]:
                if pkt.src not in self.node.local:
                    return [("next", pkt, trail)]
                i += 4
            elif t == "update":
                i += 6  # update @set { ip saddr }: affinity memory starts empty
            elif t == "dnat":
                return self.dnat(tokens[i:], pkt, trail)
            elif t == "masquerade":
                return [("next", replace(pkt, masquerade=True), trail)]
            else:
                return self.verdict(tokens[i:], pkt, trail)
        return [("next", pkt, trail)]

    def l4proto(self, tokens: list[str], i: int, pkt: Packet) -> tuple[int, bool]:
        if tokens[i] == "{":
            end = tokens.index("}", i)
            protos = {x.strip(",") for x in tokens[i + 1 : end]}
            return end + 1, pkt.proto in protos
        return i + 1, pkt.proto == tokens[i]

    def compare(self, operand: str, key: tuple[Address | int | str, ...]) -> bool:
        if operand.startswith("@"):
            return _lookup(self.table, operand[1:], key) is not None
        if len(key) != 1:
            raise Unsupported(operand)
        return _part_matches(operand, key[0])

    def dnat(
        self, tokens: list[str], pkt: Packet, trail: tuple[str, ...]
    ) -> list[Fate | tuple[str, Packet, tuple[str, ...]]]:
        # dnat ip to ct mark map @m | dnat ip to A:P
        if tokens[3:5] == ["ct", "mark"] and tokens[5] == "map":
            value = _lookup(self.table, tokens[6][1:], (pkt.ct_mark,))
            if value is None:
                return [("next", pkt, trail)]
            assert isinstance(value, tuple)
            address, port = ipaddress.ip_address(value[0]), int(value[1])
        else:
            target = tokens[3]
            host, _, port_text = target.rpartition(":")
            address, port = ipaddress.ip_address(host.strip("[]")), int(port_text)
        return [Fate("dnat", replace(pkt, dnat=(address, port)), trail)]

    def verdict(
        self, tokens: list[str], pkt: Packet, trail: tuple[str, ...]
    ) -> list[Fate | tuple[str, Packet, tuple[str, ...]]]:
        word = tokens[0]
        if word in ("accept", "drop", "reject"):
            return [Fate(word, pkt, trail)]
        if word == "return":
            return [("return", pkt, trail)]
        if word in ("jump", "goto"):
            results = self.run(tokens[1], pkt, trail)
            out: list[Fate | tuple[str, Packet, tuple[str, ...]]] = []
            for r in results:
                if isinstance(r, Fate):
                    out.append(r)
                elif word == "jump":
                    out.append(("next", r[1], r[2]))  # back to the rule after the jump
                else:
                    out.append(("return", r[1], r[2]))  # goto: back to our caller
            return out
        raise Unsupported(" ".join(tokens))


def _base_chains(table: FakeTable, hook: Hook) -> list[str]:
    chains = [c for c in table.chains.values() if c.chain.hook == hook]
    return [c.chain.name for c in sorted(chains, key=lambda c: c.chain.priority or 0)]


def run_hook(
    node: Node, table_name: str, hook: Hook, pkt: Packet, nat: bool | None = None
) -> list[Fate]:
    """Every fate of `pkt` through the base chains of `hook` in one table (in priority
    order; `nat` picks nat or filter chains). A chain's end is its policy, accept."""
    table = node.table(table_name)
    if table is None:
        return [Fate("accept", pkt)]
    names = [
        n
        for n in _base_chains(table, hook)
        if nat is None
        or (
            table.chains[n].chain.type is not None
            and (table.chains[n].chain.type.value == "nat") == nat
        )
    ]
    fates = [Fate("accept", pkt)]
    ev = _Eval(node, table)
    for name in names:
        nxt = []
        for fate in fates:
            if fate.verdict not in ("accept", "dnat"):
                nxt.append(fate)
                continue
            for r in ev.run(name, fate.packet, fate.trail):
                nxt.append(r if isinstance(r, Fate) else Fate("accept", r[1], r[2]))
        fates = nxt
    return fates


@dataclass(frozen=True)
class Outcome:
    kind: str  # endpoint, REJECT, DROP, no match
    endpoint: tuple[Address, int] | None
    masquerade: bool


def service_fates(node: Node, src: Address, proto: str, dst: Address, port: int) -> set[Outcome]:
    """A new connection arriving at the node (prerouting path), through `netlet`."""
    pkt = Packet(src, dst, proto, port)
    out: set[Outcome] = set()
    for pre in run_hook(node, "netlet", Hook.PREROUTING, pkt, nat=False):
        if pre.verdict != "accept":
            out.add(Outcome(pre.verdict.upper(), None, False))
            continue
        for nat in run_hook(node, "netlet", Hook.PREROUTING, pre.packet, nat=True):
            p = nat.packet
            hook = Hook.INPUT if p.daddr in node.local else Hook.FORWARD
            for filt in run_hook(node, "netlet", hook, p, nat=False):
                if filt.verdict in ("drop", "reject"):
                    out.add(Outcome(filt.verdict.upper(), None, False))
                    continue
                for post in run_hook(node, "netlet", Hook.POSTROUTING, filt.packet, nat=True):
                    q = post.packet
                    if q.dnat is None:
                        out.add(Outcome("no match", None, False))
                    else:
                        out.add(Outcome("endpoint", q.dnat, q.masquerade))
    return out


def policy_fates(
    node: Node, src: Address, proto: str, dst: Address, port: int, hook: Hook
) -> set[str]:
    """accept/drop of a new connection through `netlet-policy` at one hook."""
    pkt = Packet(src, dst, proto, port)
    return {
        f.verdict if f.verdict in ("drop", "reject") else "accept"
        for f in run_hook(node, "netlet-policy", hook, pkt)
    }
