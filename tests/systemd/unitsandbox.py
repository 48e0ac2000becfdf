"""Run a command under a unit file's process sandbox, read from the unit's own text.

Where systemd is PID 1, ``systemd_run_command`` hands the unit's settings to
``systemd-run``. Where it is not (containers, most CI machines), ``sandbox_command`` rebuilds
the same kernel-enforced restrictions that systemd installs in the service process just
before ``execve``:

- ``PrivateNetwork=yes``: a fresh network namespace with only loopback (``unshare --net``);
- ``CapabilityBoundingSet=``, ``NoNewPrivileges=``: no capabilities at all and
  ``no_new_privs`` (``setpriv``); the unit's ``User=`` does not exist on a build machine, so
  the uid stays 0 (now powerless) unless a stand-in user is given;
- ``RestrictAddressFamilies=``, ``MemoryDenyWriteExecute=``, ``RestrictRealtime=``,
  ``RestrictNamespaces=``, ``LockPersonality=``, ``SystemCallFilter=``,
  ``SystemCallErrorNumber=`` and ``SystemCallArchitectures=native``: seccomp filters built
  with libseccomp the way systemd builds them, the system call groups taken from
  ``systemd-analyze syscall-filter`` so they match the installed systemd exactly.

Mount namespaces (``ProtectSystem=`` and friends) and cgroup controls (``DeviceAllow=``,
``IPAddressDeny=``, ``MemoryMax=``) need a service manager and are not rebuilt here.

Run as a script, ``python unitsandbox.py UNIT -- CMD...`` installs the unit's seccomp
filters in itself and then executes CMD, as systemd does.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve()

#: The unit's process-level sandbox: what ``sandbox_command`` rebuilds, and what
#: ``systemd_run_command`` hands to ``systemd-run -p`` so both paths test the same thing.
PROCESS_KEYS = (
    "PrivateNetwork",
    "IPAddressDeny",
    "IPAddressAllow",
    "RestrictAddressFamilies",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "SystemCallArchitectures",
    "MemoryDenyWriteExecute",
    "LockPersonality",
    "RestrictNamespaces",
    "RestrictRealtime",
)

NAMESPACE_FLAGS = {
    "cgroup": 0x02000000,  # CLONE_NEWCGROUP
    "ipc": 0x08000000,  # CLONE_NEWIPC
    "net": 0x40000000,  # CLONE_NEWNET
    "mnt": 0x00020000,  # CLONE_NEWNS
    "pid": 0x20000000,  # CLONE_NEWPID
    "user": 0x10000000,  # CLONE_NEWUSER
    "uts": 0x04000000,  # CLONE_NEWUTS
}

TRUE = {"1", "yes", "true", "on"}


class UnitFile:
    """The ``[Service]`` settings of a unit file, every assignment kept in order."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.sections: dict[str, list[tuple[str, str]]] = {}
        section = ""
        for raw in self.path.read_text().splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                self.sections.setdefault(section, [])
                continue
            key, _, value = line.partition("=")
            self.sections.setdefault(section, []).append((key.strip(), value.strip()))

    def values(self, key: str, section: str = "Service") -> list[str]:
        """Every assignment of ``key``, an empty one resetting the list (as systemd does)."""
        out: list[str] = []
        for k, v in self.sections.get(section, []):
            if k == key:
                out = [] if v == "" else [*out, v]
        return out

    def assigned(self, key: str, section: str = "Service") -> bool:
        return any(k == key for k, _ in self.sections.get(section, []))

    def last(self, key: str, default: str = "", section: str = "Service") -> str:
        found = self.values(key, section)
        return found[-1] if found else default

    def flag(self, key: str) -> bool:
        return self.last(key).lower() in TRUE

    def words(self, key: str, section: str = "Service") -> list[str]:
        return [w for v in self.values(key, section) for w in v.split()]


# --- system call groups, from the installed systemd -------------------------------------------


@functools.lru_cache(maxsize=1)
def syscall_groups() -> dict[str, list[str]]:
    """``@group -> members`` (system calls and nested groups) as this systemd defines them."""
    text = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and current is not None:
            item = line.strip()
            if not item.startswith("#"):
                current.append(item)
        else:
            current = None
    return groups


def expand(names: Sequence[str]) -> set[str]:
    groups = syscall_groups()
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            if name not in groups:
                raise ValueError(f"unknown system call group {name}")
            out |= expand(groups[name])
        else:
            out.add(name.split(":", 1)[0])  # "name:errno" keeps the name
    return out


def syscall_policy(unit: UnitFile) -> tuple[bool, set[str]] | None:
    """``(allow_list, names)`` from ``SystemCallFilter=``, or None when it is not set."""
    allow: bool | None = None
    names: set[str] = set()
    for value in unit.values("SystemCallFilter"):
        deny = value.startswith("~")
        items = expand(value.lstrip("~").split())
        if allow is None:
            allow, names = (not deny), set(items)
        elif allow:
            names = names - items if deny else names | items
        else:
            names = names | items if deny else names - items
    return None if allow is None else (allow, names)


# --- seccomp, as systemd builds it --------------------------------------------------------------


def _errno_value(name: str) -> int:
    value = getattr(errno, name.upper(), None)
    if value is None:
        raise ValueError(f"unknown errno {name}")
    return value


def _address_family(name: str) -> int:
    value = getattr(socket, name, None)
    if value is None:
        raise ValueError(f"unknown address family {name}")
    return int(value)


def build_filters(unit: UnitFile) -> list:
    """The seccomp filters the unit asks for, in the order systemd loads them."""
    import pyseccomp as sc

    # Every filter covers the native ABI only: a system call through another ABI (i386, x32
    # on x86_64) kills the process, which is what SystemCallArchitectures=native asks for.
    arch = sc.Arch.NATIVE
    filters = []

    def known(name: str) -> int | None:
        nr = sc.resolve_syscall(arch, name)
        return None if nr == -1 else nr  # -1: not a system call of this libseccomp

    def new():
        return sc.SyscallFilter(sc.ALLOW)

    families = unit.words("RestrictAddressFamilies")
    if families and families != ["none"]:
        deny_mode = families[0].startswith("~")
        listed = {_address_family(w.lstrip("~")) for w in families}
        af_max = 64  # above every AF_* the kernel knows
        blocked = [af for af in range(af_max) if (af in listed) == deny_mode]
        f = new()
        action = sc.ERRNO(errno.EAFNOSUPPORT)
        for af in blocked:
            f.add_rule(action, "socket", sc.Arg(0, sc.EQ, af))
        if not deny_mode:
            f.add_rule(action, "socket", sc.Arg(0, sc.GE, af_max))
        filters.append(f)

    if unit.flag("MemoryDenyWriteExecute"):
        prot_wx = 0x2 | 0x4  # PROT_WRITE | PROT_EXEC
        f = new()
        eperm = sc.ERRNO(errno.EPERM)
        for call in ("mmap", "mmap2"):
            if known(call) is not None:
                f.add_rule(eperm, call, sc.Arg(2, sc.MASKED_EQ, prot_wx, prot_wx))
        for call in ("mprotect", "pkey_mprotect"):
            if known(call) is not None:
                f.add_rule(eperm, call, sc.Arg(2, sc.MASKED_EQ, 0x4, 0x4))
        if known("shmat") is not None:
            f.add_rule(eperm, "shmat", sc.Arg(2, sc.MASKED_EQ, 0o100000, 0o100000))  # SHM_EXEC
        filters.append(f)

    if unit.flag("RestrictRealtime"):
        f = new()
        for policy in (1, 2, 6):  # SCHED_FIFO, SCHED_RR, SCHED_DEADLINE
            f.add_rule(
                sc.ERRNO(errno.EPERM), "sched_setscheduler", sc.Arg(1, sc.MASKED_EQ, 0xFF, policy)
            )
        filters.append(f)

    restrict_ns = unit.last("RestrictNamespaces")
    if restrict_ns:
        if restrict_ns.lower() in TRUE:
            denied = set(NAMESPACE_FLAGS)
        elif restrict_ns.startswith("~"):
            denied = set(restrict_ns[1:].split())
        elif restrict_ns.lower() in ("no", "false", "off", "0"):
            denied = set()
        else:
            denied = set(NAMESPACE_FLAGS) - set(restrict_ns.split())
        if denied:
            f = new()
            eperm = sc.ERRNO(errno.EPERM)
            # clone3 passes its flags in a struct a filter cannot read: systemd answers ENOSYS so
            # the C library falls back to clone(), whose flags it can check.
            f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
            for name in sorted(denied):
                flag = NAMESPACE_FLAGS[name]
                f.add_rule(eperm, "unshare", sc.Arg(0, sc.MASKED_EQ, flag, flag))
                f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
                f.add_rule(eperm, "setns", sc.Arg(1, sc.MASKED_EQ, flag, flag))
            f.add_rule(eperm, "setns", sc.Arg(1, sc.EQ, 0))
            filters.append(f)

    if unit.flag("LockPersonality"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF) & 0xFFFFFFFF
        f = new()
        f.add_rule(sc.ERRNO(errno.EPERM), "personality", sc.Arg(0, sc.NE, current))
        filters.append(f)

    policy = syscall_policy(unit)
    if policy is not None:
        allow, names = policy
        err = unit.last("SystemCallErrorNumber")
        refuse = sc.ERRNO(_errno_value(err)) if err else sc.KILL_PROCESS
        f = sc.SyscallFilter(refuse if allow else sc.ALLOW)
        for name in sorted(names):
            if known(name) is not None:
                f.add_rule(sc.ALLOW if allow else refuse, name)
        # Loaded last: seccomp() itself is not in most allow lists.
        filters.append(f)
    return filters


# --- commands -----------------------------------------------------------------------------------


def systemd_is_pid1() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


def sandbox_command(unit_path: Path, command: Sequence[str], user: str | None = None) -> list[str]:
    """``command`` wrapped so that it runs under the unit's sandbox without a manager.

    Needs root (for the network namespace). The unit's own ``User=`` does not exist on a
    build machine: ``user`` (e.g. ``nobody``) stands in for it; with None the command keeps
    uid 0 but, with ``CapabilityBoundingSet=`` empty, holds no capability at all.
    """
    import pwd

    unit = UnitFile(unit_path)
    prefix: list[str] = []
    if unit.flag("PrivateNetwork"):
        prefix += ["unshare", "--net"]
    prefix += ["setpriv"]
    if user is not None:
        entry = pwd.getpwnam(user)
        prefix += [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
    if unit.assigned("CapabilityBoundingSet") and not unit.words("CapabilityBoundingSet"):
        prefix += ["--bounding-set=-all", "--inh-caps=-all"]
    if unit.flag("NoNewPrivileges"):
        prefix += ["--no-new-privs"]
    return [*prefix, sys.executable, str(HERE), str(unit_path), "--", *command]


def systemd_run_command(unit_path: Path, command: Sequence[str]) -> list[str]:
    """``command`` as a transient service with the unit's process sandbox (systemd as PID 1).

    Mount settings are left out on purpose: they would hide an interpreter that lives in a
    home directory, and ``sandbox_command`` does not rebuild them either.
    """
    unit = UnitFile(unit_path)
    args = ["systemd-run", "--wait", "--pipe", "--quiet", "--collect"]
    for key in PROCESS_KEYS:
        if unit.assigned(key) and not unit.values(key):
            args += ["-p", f"{key}="]
        for value in unit.values(key):
            args += ["-p", f"{key}={value}"]
    return [*args, "--", *command]


def have_sandbox_tools() -> str | None:
    """Why the manager-less sandbox cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespace, identity change)"
    for tool in ("unshare", "setpriv", "systemd-analyze"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        return f"pyseccomp/libseccomp unavailable: {exc}"
    return None


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: unitsandbox.py UNIT -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    unit = UnitFile(Path(argv[0]))
    for f in build_filters(unit):
        f.load()
    os.execvp(argv[2], list(argv[2:]))
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
