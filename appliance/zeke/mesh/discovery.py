"""Gateways on the local network over mDNS/DNS-SD: advertise ``_zeke._tcp``, browse, watch.

Every gateway (``zeke gateway`` or an Argon running ``firmware/gateway``) advertises one
service instance with TXT ``id``, ``proto`` (line protocol version), ``fw`` (firmware or zeke
version) and ``nodes`` (node count). Interfaces are given as IPv4 addresses or interface
names; an empty list means every interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from zeroconf import (
    DNSOutgoing,
    DNSQuestion,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from zeke.errors import UsageError, ZekeError

SERVICE_TYPE = "_zeke._tcp.local."
_TYPE_SRV = 33
_CLASS_IN = 1
_FLAGS_QUERY = 0x0000
log = logging.getLogger(__name__)


@dataclass
class GatewayInfo:
    """One advertised gateway, as resolved from its SRV, TXT and address records."""

    name: str
    id: str
    proto: str
    fw: str
    nodes: int
    host: str
    port: int
    addresses: list[str] = field(default_factory=list)
    txt: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "id": self.id,
            "proto": self.proto,
            "fw": self.fw,
            "nodes": self.nodes,
            "host": self.host,
            "port": self.port,
            "addresses": self.addresses,
            "txt": self.txt,
        }


def protocol_mismatch(info: GatewayInfo) -> str | None:
    """Why this gateway cannot be spoken to (another protocol version), or None.

    There is no negotiation, so nothing can talk a gateway or an appliance down to an older,
    weaker version: both sides speak exactly one version and say so when it differs.
    """
    from zeke.mesh.protocol import PROTOCOL_VERSION

    if info.proto == str(PROTOCOL_VERSION):
        return None
    return (
        f"gateway {info.name!r} speaks protocol {info.proto or '(none)'}, this zeke speaks "
        f"{PROTOCOL_VERSION}: update the gateway (firmware/gateway, or zeke on that host)"
    )


def instance_name(name: str) -> str:
    return f"{name}.{SERVICE_TYPE}"


def short_name(full: str) -> str:
    return full[: -len(SERVICE_TYPE) - 1] if full.endswith("." + SERVICE_TYPE) else full


def resolve_interfaces(interfaces: list[str] | None) -> list[str] | InterfaceChoice:
    """IPv4 addresses for zeroconf from addresses or interface names; [] means all."""
    if not interfaces:
        return InterfaceChoice.All
    import psutil

    table = psutil.net_if_addrs()
    out: list[str] = []
    for item in interfaces:
        try:
            out.append(str(ipaddress.IPv4Address(item)))
            continue
        except ValueError:
            pass
        addrs = [a.address for a in table.get(item, []) if a.family == socket.AF_INET]
        if not addrs:
            known = ", ".join(sorted(table)) or "none"
            raise UsageError(
                f"no IPv4 address on interface {item!r}",
                hint=f"give an interface with an address ({known}) or an IPv4 address",
            )
        out.extend(addrs)
    return out


def advertised_addresses(interfaces: list[str] | None) -> list[str]:
    """The addresses a gateway puts in its A records: the given ones, else every non-loopback."""
    chosen = resolve_interfaces(interfaces)
    if isinstance(chosen, list):
        return chosen
    import psutil

    addrs = []
    for entries in psutil.net_if_addrs().values():
        for a in entries:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                addrs.append(a.address)
    return addrs or ["127.0.0.1"]


def open_zeroconf(interfaces: list[str] | None) -> AsyncZeroconf:
    try:
        return AsyncZeroconf(interfaces=resolve_interfaces(interfaces), ip_version=IPVersion.V4Only)
    except OSError as err:
        raise ZekeError(
            f"cannot open mDNS sockets: {err}",
            hint="check that UDP port 5353 is usable and the interface has multicast",
        ) from err


def _info_to_gateway(info: ServiceInfo) -> GatewayInfo:
    txt = {
        k.decode(errors="replace"): (v or b"").decode(errors="replace")
        for k, v in (info.properties or {}).items()
    }
    try:
        nodes = int(txt.get("nodes", "0"))
    except ValueError:
        nodes = 0
    return GatewayInfo(
        name=short_name(info.name),
        id=txt.get("id", ""),
        proto=txt.get("proto", ""),
        fw=txt.get("fw", ""),
        nodes=nodes,
        host=(info.server or "").rstrip("."),
        port=int(info.port or 0),
        addresses=info.parsed_addresses(IPVersion.V4Only),
        txt=txt,
    )


#: How long a gateway listens for another holder of its name before advertising it.
NAME_CHECK_MS = 1500


class Advertiser:
    """Registers one gateway's service; ``update`` refreshes its TXT, ``close`` says goodbye."""

    def __init__(self, interfaces: list[str] | None, ttl: int = 120):
        self.interfaces = interfaces
        self.ttl = ttl
        self._zc: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None

    def _make_info(self, name: str, port: int, txt: dict[str, str], gateway_id: str) -> ServiceInfo:
        return ServiceInfo(
            SERVICE_TYPE,
            instance_name(name),
            port=port,
            properties=txt,
            server=f"zeke-{gateway_id}.local.",
            addresses=[socket.inet_aton(a) for a in advertised_addresses(self.interfaces)],
            host_ttl=self.ttl,
            other_ttl=self.ttl,
        )

    async def start(self, name: str, port: int, gateway_id: str, txt: dict[str, str]) -> None:
        """Advertise, refusing a name another gateway holds (pairings are by name).

        zeroconf's own probe misses a holder that answers late, so the name is looked up
        first; the same gateway id (this gateway restarted) may take its name back.
        """
        self._zc = open_zeroconf(self.interfaces)
        self._info = self._make_info(name, port, txt, gateway_id)
        holder = AsyncServiceInfo(SERVICE_TYPE, instance_name(name))
        try:
            taken = await holder.async_request(self._zc.zeroconf, NAME_CHECK_MS)
            if taken and (holder.properties or {}).get(b"id") != gateway_id.encode():
                raise NonUniqueNameException(name)
            await (await self._zc.async_register_service(self._info, allow_name_change=False))
        except NonUniqueNameException as err:
            await self._zc.async_close()
            self._zc = None
            raise UsageError(
                f"another gateway already advertises the name {name!r}",
                hint="give this gateway another --name",
            ) from err

    async def update(self, txt: dict[str, str]) -> None:
        if self._zc is None or self._info is None:
            return
        info = self._info
        self._info = ServiceInfo(
            info.type,
            info.name,
            port=info.port,
            properties=txt,
            server=info.server,
            addresses=info.addresses,
            host_ttl=self.ttl,
            other_ttl=self.ttl,
        )
        await (await self._zc.async_update_service(self._info))

    async def close(self) -> None:
        """Unregister (the goodbye packet: TTL 0) so browsers drop us at once."""
        if self._zc is None:
            return
        with contextlib.suppress(Exception):
            if self._info is not None:
                await (await self._zc.async_unregister_service(self._info))
        await self._zc.async_close()
        self._zc = None


class GatewayWatcher:
    """Keeps ``gateways`` (name -> GatewayInfo) current while it runs; calls ``on_change``."""

    def __init__(
        self,
        interfaces: list[str] | None,
        on_change: Callable[[str, GatewayInfo | None], None] | None = None,
        resolve_timeout_s: float = 3.0,
    ):
        self.interfaces = interfaces
        self.on_change = on_change
        self.resolve_timeout_s = resolve_timeout_s
        self.gateways: dict[str, GatewayInfo] = {}
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._zc = open_zeroconf(self.interfaces)
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_state_change]
        )
        sweeper = asyncio.ensure_future(self._sweep())
        self._tasks.add(sweeper)  # type: ignore[arg-type]

    async def _sweep(self) -> None:
        """Expire gateways with their SRV record's TTL; re-query it from 80% of its TTL.

        The browser alone keeps a service as long as its PTR record, which zeroconf holds for
        at least 1125 s; a gateway that crashed (no goodbye) must go with its shorter TTL.
        """
        assert self._zc is not None
        zc = self._zc.zeroconf
        asked: dict[str, float] = {}
        while True:
            await asyncio.sleep(0.5)
            now = current_time_millis()
            for name in list(self.gateways):
                full = instance_name(name)
                record = zc.cache.get_by_details(full, _TYPE_SRV, _CLASS_IN)
                if record is None or record.is_expired(now):
                    self.gateways.pop(name, None)
                    asked.pop(name, None)
                    if self.on_change:
                        self.on_change(name, None)
                elif now >= record.get_expiration_time(80) and now - asked.get(name, 0) >= max(
                    500, record.ttl * 100
                ):
                    asked[name] = now
                    out = DNSOutgoing(_FLAGS_QUERY)
                    out.add_question(DNSQuestion(full, _TYPE_SRV, _CLASS_IN))
                    zc.async_send(out)

    def _on_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            short = short_name(name)
            if self.gateways.pop(short, None) is not None and self.on_change:
                self.on_change(short, None)
            return
        task = asyncio.ensure_future(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, self.resolve_timeout_s * 1000):
            log.debug("could not resolve %s", name)
            return
        gateway = _info_to_gateway(info)
        self.gateways[gateway.name] = gateway
        if self.on_change:
            self.on_change(gateway.name, gateway)

    async def refresh(self, name: str) -> GatewayInfo | None:
        """Resolve ``name`` again now (after a failed connect the port may have changed)."""
        await self._resolve(instance_name(name))
        return self.gateways.get(name)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()


async def browse(timeout_s: float, interfaces: list[str] | None) -> list[GatewayInfo]:
    """Every gateway that answers within ``timeout_s`` seconds, sorted by name."""
    watcher = GatewayWatcher(interfaces, resolve_timeout_s=max(0.5, timeout_s * 0.8))
    await watcher.start()
    try:
        await asyncio.sleep(timeout_s)
        if watcher._tasks:  # let resolutions already under way finish briefly
            await asyncio.wait(list(watcher._tasks), timeout=0.5)
    finally:
        await watcher.close()
    return sorted(watcher.gateways.values(), key=lambda g: g.name)
