"""The TOML configuration: pydantic models, where the file is, validation and atomic writes.

Where the config comes from (the first that applies wins, files are not merged):

1. ``--config PATH`` of a command, or ``$ZEKE_CONFIG`` (this file must exist when read)
2. ``$XDG_CONFIG_HOME/zeke/zeke.toml`` (``~/.config/zeke/zeke.toml``)
3. ``/etc/zeke/zeke.toml``
4. the defaults below

Everything is validated before anything starts: an unknown key is an error with a
did-you-mean hint, and every error names the file, the key and what is allowed. Values are
strict (``zeke.config_values``): TOML's own types, no coercion, finite numbers in range.

Reading refuses anything but a regular file of at most 256 KiB before reading a byte (a FIFO,
``/dev/zero``, a directory), and turns every parser failure (nesting too deep, an integer of
thousands of digits) into a one-line ``ConfigError``; no value is ever echoed back whole.

Writes hold a lock (``fsutil.locked``) across the read-modify-write, so parallel writers
never lose each other's changes; they are atomic (temp file, fsync, rename, fsync of the
directory), keep the previous file as ``zeke.toml.bak``, go through a symlink to the file it
names, refuse read-only files and special files, and sweep temp files a killed write left. A
write that fails or would be invalid leaves the old file as it was.

Each ``[section]`` is its own model, so a feature adds its section by adding one field to
``ZekeConfig``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import socket
import stat
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from zeke import fsutil
from zeke.config_values import ConfigPath, StrictModel, Text, check_path, clip
from zeke.errors import ConfigError
from zeke.mesh.settings import MeshSettings, MqttSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Largest config file read or written. A zeke.toml is a few KiB; anything this big is the
#: wrong file (or an attack), refused before it is read, let alone parsed.
MAX_BYTES = 256 * 1024
#: At most this many problems are listed in one error (a broken file can have thousands).
MAX_PROBLEMS = 8
#: sun_path holds 108 bytes with the terminating NUL (Linux).
SOCKET_PATH_MAX = 107

ENV_CONFIG = "ZEKE_CONFIG"
SYSTEM_CONFIG = Path("/etc/zeke/zeke.toml")
FILE_NAME = "zeke.toml"
HEADER = (
    "zeke configuration. `zeke config show` prints every key with its value;\n"
    "`zeke config set SECTION.KEY VALUE` changes one and keeps the old file as .bak."
)


def default_device_name() -> str:
    """This machine's host name, made a valid device name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0]).strip("-._")
    return (name or "zeke")[:63]


class Section(StrictModel):
    """A ``[section]`` of the file: unknown keys are errors, assignments are validated."""


class DeviceConfig(Section):
    name: str = Field(
        default_factory=default_device_name,
        description="this device's name in events and on the mesh (letters, digits, . _ -)",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
            raise ValueError(
                "must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value


class CameraConfig(Section):
    uri: Annotated[Text, Field(max_length=4096)] = Field(
        "auto",
        description="auto (first camera found, else the demo clip), demo, v4l2:///dev/video0, "
        "csi://0, file:///path/clip.mp4, a directory of images, rtsp://host/stream",
    )
    width: int = Field(640, ge=16, le=7680, description="requested frame width (cameras)")
    height: int = Field(480, ge=16, le=4320, description="requested frame height (cameras)")
    fps: float = Field(30.0, gt=0, le=240, description="requested frame rate (cameras)")
    loop: bool = Field(True, description="start a video file or image folder over at its end")
    pace: bool = Field(True, description="play video files at their own frame rate")

    @field_validator("uri")
    @classmethod
    def _known_uri(cls, value: str) -> str:
        from zeke.camera.uri import parse_uri
        from zeke.errors import UsageError

        try:
            parse_uri(value)
        except UsageError as err:
            raise ValueError(f"{err.message}; {err.hint}" if err.hint else err.message) from None
        return value.strip()


class VisionConfig(Section):
    detector: Literal["short", "full", "ssd"] = Field(
        "short",
        description="short (faces within ~2 m), full (up to ~5 m), ssd (Edge TPU face model)",
    )
    backend: Literal["auto", "cpu", "edgetpu"] = Field(
        "auto", description="auto (Edge TPU when present, else CPU), cpu or edgetpu"
    )
    threads: int = Field(1, ge=1, le=64, description="CPU threads for inference")
    min_score: float = Field(0.5, gt=0, lt=1, description="minimum face detection score")
    models_dir: ConfigPath | None = Field(
        None, description="models directory (default: the signed bundle, then the factory copy)"
    )


class EventsConfig(Section):
    socket: ConfigPath | None = Field(
        None,
        description="event socket (default /run/zeke/events.sock as root, else in "
        "$XDG_RUNTIME_DIR)",
    )

    @field_validator("socket")
    @classmethod
    def _fits_a_socket_address(cls, value: Path | None) -> Path | None:
        if value is not None and len(os.fsencode(str(value))) > SOCKET_PATH_MAX:
            raise ValueError(
                f"is {len(os.fsencode(str(value)))} bytes long; the kernel takes socket paths "
                f"of at most {SOCKET_PATH_MAX} bytes"
            )
        return value


class WatchConfig(Section):
    preview: bool = Field(False, description="show the camera picture in `zeke watch`")
    kiosk: bool = Field(False, description="full-screen display for an attached screen")


class ZekeConfig(Section):
    """The whole file. Add a section by adding a field here."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    mesh: MeshSettings = Field(default_factory=MeshSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)


# -- errors ------------------------------------------------------------------------------


def _section_model(name: str) -> type[BaseModel] | None:
    info = ZekeConfig.model_fields.get(name)
    if info is None or not isinstance(info.annotation, type):
        return None
    return info.annotation if issubclass(info.annotation, BaseModel) else None


def _did_you_mean(word: str, choices: list[str]) -> str:
    if len(word) > 64:
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _name(part: object) -> str:
    """A key or section name as it may be printed: short, control characters escaped."""
    text = str(part)
    if len(text) <= 40 and text.isprintable():
        return text
    return clip(text, 40)


def _describe_error(error: dict[str, Any]) -> str:
    loc = [_name(part) for part in error["loc"]]
    kind = error["type"]
    sections = list(ZekeConfig.model_fields)
    if kind == "extra_forbidden":
        if len(loc) == 1:
            name = loc[0]
            owners = [s for s in sections if name in _section_model(s).model_fields]  # type: ignore[union-attr]
            if owners:
                return (
                    f"'{name}' must be inside a section: [{owners[0]}] {name} = ..."
                    f" (sections: {', '.join(sections)})"
                )
            close = difflib.get_close_matches(name, sections, n=1, cutoff=0.6)
            maybe = f" (did you mean [{close[0]}]?)" if close else ""
            return f"unknown section [{name}]{maybe}; allowed: " + ", ".join(
                f"[{s}]" for s in sections
            )
        section, key = loc[0], loc[-1]
        model = _section_model(section)
        allowed = list(model.model_fields) if model else []
        return (
            f"unknown key '{key}' in [{section}]{_did_you_mean(key, allowed)}; "
            f"allowed: {', '.join(allowed)}"
        )
    if len(loc) == 1 and kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"[{loc[0]}] must be a table (a [{loc[0]}] section with key = value lines)"
    where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]"
    message = error["msg"]
    message = re.sub(r"^Value error, ", "", message)
    message = re.sub(r"^Input should be", "must be", message)
    message = re.sub(r"^String should", "must", message)
    message = re.sub(r"^List should", "must", message)
    got = error.get("input")
    if loc[:2] == ["camera", "uri"] and isinstance(got, str):
        from zeke.camera.uri import redact

        got = redact(got)
    shown = f", got {clip(got)}" if isinstance(got, (str, int, float, bool)) else ""
    return f"{where}: {message}{shown}"


def validation_error(err: ValidationError, source: str, hint: str | None = None) -> ConfigError:
    """One ``ConfigError`` listing the problems of ``err`` (the first few), with file and key."""
    errors = err.errors(include_url=False, include_context=False)
    problems = [_describe_error(e) for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return ConfigError(
        f"{source}: " + "; ".join(problems),
        hint=hint or "fix the file, or see `zeke config show` for every key and its default",
    )


# -- reading -----------------------------------------------------------------------------

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}


def _p(path: object) -> str:
    """A path as messages show it: whole unless absurdly long (then its start and its end)."""
    text = str(path)
    if len(text) <= 200 and text.isprintable():
        return text
    if len(text) <= 200:
        return clip(text, 200)
    return f"{text[:120]}…{text[-60:]}"


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _os_error(path: Path, err: OSError, doing: str = "be read") -> ConfigError:
    if isinstance(err, PermissionError):
        return ConfigError(
            f"{_p(path)}: no permission to read it",
            hint=f"run as a user who can, or chmod a+r {_p(path)}",
        )
    return ConfigError(
        f"{_p(path)}: cannot {doing}: {err.strerror or err}",
        hint="check the path (`zeke config path` shows which file is in use)",
    )


def _not_a_file(path: Path, mode: int) -> ConfigError:
    if stat.S_ISDIR(mode):
        return ConfigError(
            f"{_p(path)}: is a directory, not a config file",
            hint=f"name the file inside it, e.g. {path / FILE_NAME}",
        )
    return ConfigError(
        f"{_p(path)}: is {_kind(mode)}, not a config file",
        hint="a config file is a regular text file; check the path (`zeke config path`)",
    )


def _too_big(path: Path, size: int) -> ConfigError:
    return ConfigError(
        f"{_p(path)}: is {size:,} bytes; a config file may have at most {MAX_BYTES // 1024} KiB",
        hint="is this the right file? A zeke.toml is a few KiB (`zeke config show` prints one)",
    )


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None if it does not exist; only a regular file within the limit.

    The file is looked at (stat) before it is opened, so a FIFO is never opened and a device
    never sees an open; it is opened non-blocking and checked again on the descriptor (it may
    have been swapped), and never more than the limit is read (``/proc`` files claim 0 bytes).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except ValueError:
        raise ConfigError(f"{clip(str(path))}: a path with a NUL byte") from None
    except OSError as err:
        raise _os_error(path, err) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_a_file(path, info.st_mode)
    if info.st_size > MAX_BYTES:
        raise _too_big(path, info.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise _os_error(path, err) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_a_file(path, info.st_mode)
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise _os_error(path, err) from None
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        raise _too_big(path, size)
    return b"".join(chunks)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        why = "it starts with a UTF-16 byte-order mark" if utf16 else f"byte {err.start} is not"
        raise ConfigError(
            f"{source}: not a text file (TOML must be UTF-8; {why})",
            hint="save it as UTF-8 text (Save As, encoding UTF-8), or check that this is the "
            "right file",
        ) from None


#: Strings and comments, taken out before looking for long dotted keys.
_STRINGS_AND_COMMENTS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')
#: A key (or table name) of more than this many dotted parts: a zeke.toml has two.
MAX_KEY_PARTS = 32
_LONG_KEY = re.compile(r"(?:\.[ \t]*(?:[A-Za-z0-9_-]+[ \t]*)?){" + str(MAX_KEY_PARTS) + "}")


def _has_long_dotted_key(text: str) -> bool:
    """Whether a key has dozens of dotted parts: the TOML parser takes time quadratic in them
    (20,000 parts: 8 s and a GB), so such a file is refused before it is parsed."""
    if text.count(".") < MAX_KEY_PARTS:
        return False
    return _LONG_KEY.search(_STRINGS_AND_COMMENTS.sub("", text)) is not None


def parse_config(text: str, source: str = "config") -> ZekeConfig:
    """Validate TOML text; ``source`` names the file in error messages."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _too_big(Path(source), len(text.encode("utf-8", "surrogatepass")))
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors write
    if _has_long_dotted_key(text):
        raise ConfigError(
            f"{source}: a key or table name of more than {MAX_KEY_PARTS} dotted parts",
            hint="a zeke.toml has [section] headers and key = value lines, nothing deeper",
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"{source}: not valid TOML: {clip(str(err), 200)[1:-1]}",
            hint="fix the syntax there (strings need quotes, sections look like [vision])",
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{source}: arrays or tables nested too deeply",
            hint="a zeke.toml has sections of key = value lines, nothing nested",
        ) from None
    except ValueError as err:  # an integer past Python's 4300-digit limit
        raise ConfigError(
            f"{source}: a number with too many digits ({clip(str(err), 80)[1:-1]})",
            hint="no setting takes a number that long; check the values",
        ) from None
    try:
        return ZekeConfig.model_validate(doc)
    except ValidationError as err:
        raise validation_error(err, source) from None


def _read_text(path: Path) -> str | None:
    data = _read_bytes(path)
    return None if data is None else _decode(data, _p(path))


def read_config(path: str | os.PathLike) -> ZekeConfig:
    """Read and validate one file; missing, unreadable and invalid files are ``ConfigError``."""
    path = Path(path)
    text = _read_text(path)
    if text is None:
        if os.path.islink(path):
            raise ConfigError(
                f"{_p(path)}: a link to {clip(os.readlink(path))}, which does not exist",
                hint="create the file it points at (`zeke config set` does), or fix the link",
            )
        raise ConfigError(
            f"{_p(path)}: no such config file",
            hint="create it with `zeke setup`, or check the path (`zeke config path`)",
        )
    return parse_config(text, _p(path))


def _checked_path(text: str, origin: str) -> Path:
    """A config path named by the user: ``~`` expanded, no NUL, within the kernel's limits."""
    try:
        path = Path(text).expanduser() if text.startswith("~") else Path(text)
    except RuntimeError:
        user = text[1:].split("/", 1)[0]
        raise ConfigError(
            f"{clip(text)} ({origin}): there is no user {clip(user, 40)} to expand '~{user[:40]}'"
            if user
            else f"{clip(text)} ({origin}): there is no home directory to expand '~'",
            hint="give the full path",
        ) from None
    try:
        return check_path(str(path))
    except ValueError as err:
        raise ConfigError(
            f"{clip(str(path))} ({origin}): {err}", hint="give a usable path"
        ) from None


def user_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("XDG_CONFIG_HOME"):
        base = _checked_path(env["XDG_CONFIG_HOME"], "$XDG_CONFIG_HOME")
    else:
        try:
            home = env.get("HOME") or str(Path.home())
        except (RuntimeError, KeyError):
            raise ConfigError(
                "cannot find the home directory to look for ~/.config/zeke/zeke.toml",
                hint="set HOME or XDG_CONFIG_HOME, or name the file with --config PATH",
            ) from None
        base = _checked_path(home, "$HOME") / ".config"
    return base / "zeke" / FILE_NAME


def exists(path: Path) -> bool:
    """Whether something is at ``path``; one that cannot be looked at counts as there, so the
    read says why (no permission, a loop) instead of the search passing it by."""
    try:
        os.stat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return os.path.islink(path)
    except OSError:
        return True


@dataclass
class ConfigLocation:
    """Which file is in use (``None``: defaults), why, and where writes go."""

    path: Path | None
    origin: str  # "--config", "ZEKE_CONFIG", "user", "system" or "defaults"
    searched: list[Path] = field(default_factory=list)
    write_path: Path = field(default_factory=lambda: SYSTEM_CONFIG)


def locate(
    explicit: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    system: Path | None = None,
) -> ConfigLocation:
    """Find the config file in search order (see the module docstring)."""
    env = os.environ if env is None else env
    system = SYSTEM_CONFIG if system is None else system
    if explicit:
        path = _checked_path(str(explicit), "--config")
        return ConfigLocation(path, "--config", [path], path)
    if env.get(ENV_CONFIG):
        path = _checked_path(env[ENV_CONFIG], f"${ENV_CONFIG}")
        return ConfigLocation(path, ENV_CONFIG, [path], path)
    user = user_config_path(env)
    searched = [user, system]
    for origin, path in (("user", user), ("system", system)):
        if exists(path):
            return ConfigLocation(path, origin, searched, path)
    fresh = system if os.geteuid() == 0 else user
    return ConfigLocation(None, "defaults", searched, fresh)


@dataclass
class LoadedConfig:
    config: ZekeConfig
    location: ConfigLocation

    @property
    def path(self) -> Path | None:
        return self.location.path


def load_config(
    explicit: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    system: Path | None = None,
) -> LoadedConfig:
    """The validated config in effect, and where it came from."""
    location = locate(explicit, env, system)
    if location.path is None:
        return LoadedConfig(ZekeConfig(), location)
    return LoadedConfig(read_config(location.path), location)


# -- writing -----------------------------------------------------------------------------


def _write_target(path: Path) -> Path:
    """The file a write of ``path`` changes: a symlink's target (the link stays a link)."""
    try:
        target = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a new file, or a link to one: write where it points
        target = Path(os.path.realpath(path))
    except ValueError:
        raise ConfigError(f"{clip(str(path))}: a path with a NUL byte") from None
    except OSError as err:
        raise _os_error(path, err, "be resolved") from None
    if os.path.islink(target):
        raise ConfigError(
            f"{_p(path)}: the symbolic links go round in a loop",
            hint="point the link at a file (ls -l shows where it points)",
        )
    return target


def _writable(path: Path, target: Path) -> os.stat_result | None:
    """The target's stat if it exists and zeke may replace it; refuse otherwise."""
    shown = _p(path) if path == target else f"{_p(path)} (-> {_p(target)})"
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise _os_error(path, err, "be written") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{shown}: is {_kind(info.st_mode)}, not a config file; zeke replaces only "
                "regular files",
                hint="check the path, or write elsewhere with --config PATH",
            )
        if not info.st_mode & 0o222:
            raise ConfigError(
                f"{shown}: is read-only (mode {stat.S_IMODE(info.st_mode):04o}); zeke does not "
                "overwrite it",
                hint=f"make it writable (chmod u+w {_p(target)}) if you mean to change it, or "
                "write elsewhere with --config PATH",
            )
        if info.st_nlink > 1:
            raise ConfigError(
                f"{shown}: has {info.st_nlink} hard links; a write replaces the file, which "
                "would leave the other names with the old content",
                hint="use a symbolic link instead (ln -sf), which zeke writes through",
            )
        if not os.access(target, os.W_OK):
            hint = "run with sudo" if str(target).startswith("/etc/") else "run as its owner"
            raise ConfigError(
                f"{shown}: no permission to write it",
                hint=f"{hint}, or write elsewhere with --config PATH",
            )
    backup = target.with_name(target.name + ".bak")
    try:
        backup_info = os.lstat(backup)
    except OSError:
        backup_info = None
    if backup_info is not None and not stat.S_ISREG(backup_info.st_mode):
        raise ConfigError(
            f"{_p(backup)}: is {_kind(backup_info.st_mode)}, where zeke keeps the previous config",
            hint="move it away; zeke replaces only the regular file it wrote there",
        )
    return info


def _write_error(path: Path, err: BaseException) -> ConfigError:
    hint = "run with sudo" if str(path).startswith("/etc/") else "check the directory"
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return ConfigError(
        f"{_p(path)}: cannot write the config: {reason}",
        hint=f"{hint}, or write elsewhere with --config PATH; the old file is unchanged",
    )


def _replace(target: Path, data: bytes, info: os.stat_result | None, keep_backup: bool) -> None:
    """Replace ``target`` with ``data`` atomically (the caller holds the lock)."""
    mode = stat.S_IMODE(info.st_mode) if info else 0o644
    owner = None
    if info and os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, os.getegid()):
        owner = (info.st_uid, info.st_gid)  # root editing a user's file keeps it theirs
    tmp = fsutil.write_temp(target.parent, target.name, data, mode, owner)
    try:
        if keep_backup and info is not None:
            old = _read_bytes(target)
            if old is not None:
                backup = target.with_name(target.name + ".bak")
                bak_tmp = fsutil.write_temp(target.parent, backup.name, old, mode, owner)
                try:
                    os.replace(bak_tmp, backup)
                except BaseException:
                    with contextlib.suppress(OSError):
                        bak_tmp.unlink()
                    raise
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        fsutil.fsync_dir(target.parent)


def _prepare(path: Path) -> Path:
    target = _write_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(path, err) from None
    return target


def _locked_write(path: Path, target: Path, produce, keep_backup: bool = True):  # type: ignore[no-untyped-def]
    """Under the lock: sweep stale temps, check the target, ``produce(text or None)`` the new
    text (and a result), write it. Returns the result."""
    try:
        with fsutil.locked(target):
            fsutil.remove_stale_temps(target, (target.name + ".bak",))
            info = _writable(path, target)
            text = _read_text(target) if info is not None else None
            new_text, result = produce(text)
            data = new_text.encode("utf-8")
            if len(data) > MAX_BYTES:
                raise _too_big(path, len(data))
            _replace(target, data, info, keep_backup)
    except TimeoutError:
        raise ConfigError(
            f"{_p(path)}: another zeke is changing this config and did not finish in 10 s",
            hint="try again; if it persists, look for a stuck `zeke config set` or `zeke setup`",
        ) from None
    except OSError as err:
        raise _write_error(path, err) from None
    return result


def atomic_write_text(path: str | os.PathLike, text: str, keep_backup: bool = True) -> Path:
    """Replace ``path`` with ``text`` so that a crash leaves the old or the new file, never half.

    The previous file is kept as ``<name>.bak``; a symlink is written through. Returns the
    path written (the link's target for a link).
    """
    path = Path(path)
    target = _prepare(path)
    _writable(path, target)
    _locked_write(path, target, lambda _old: (text, None), keep_backup)
    return target


def _toml_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return value


def to_toml(config: ZekeConfig, comments: bool = True) -> str:
    """The config as TOML, one table per section, each key preceded by what it means."""
    import tomlkit

    doc = tomlkit.document()
    if comments:
        for line in HEADER.splitlines():
            doc.add(tomlkit.comment(line))
    for section_name in ZekeConfig.model_fields:
        section = getattr(config, section_name)
        table = tomlkit.table()
        for key, info in type(section).model_fields.items():
            value = getattr(section, key)
            if value is None:
                if comments and info.description:
                    table.add(tomlkit.comment(f"{key}: {info.description} (unset)"))
                continue
            if comments and info.description:
                table.add(tomlkit.comment(info.description))
            table.add(key, _toml_value(value))
        doc.add(tomlkit.nl())
        doc.add(section_name, table)
    return tomlkit.dumps(doc).lstrip("\n")


def save_config(config: ZekeConfig, path: str | os.PathLike) -> Path:
    """Write the whole config atomically (validated again from its own text first)."""
    path = Path(path)
    text = to_toml(config)
    parse_config(text, str(path))
    return atomic_write_text(path, text)


def _split_key(key: str) -> tuple[str, str]:
    sections = list(ZekeConfig.model_fields)
    section, dot, name = key.partition(".")
    if not dot or not name:
        owners = [s for s in sections if key in _section_model(s).model_fields]  # type: ignore[union-attr]
        hint = f"did you mean {owners[0]}.{key}?" if owners else "for example vision.detector"
        raise ConfigError(f"config key '{_name(key)}' needs its section: SECTION.KEY", hint=hint)
    model = _section_model(section)
    if model is None:
        raise ConfigError(
            f"unknown section '{_name(section)}'{_did_you_mean(section, sections)}",
            hint=f"sections: {', '.join(sections)}",
        )
    if name not in model.model_fields:
        allowed = list(model.model_fields)
        raise ConfigError(
            f"unknown key '{_name(name)}' in [{section}]{_did_you_mean(name, allowed)}",
            hint=f"keys of [{section}]: {', '.join(allowed)}",
        )
    return section, name


def get_value(config: ZekeConfig, key: str) -> Any:
    section, name = _split_key(key)
    return getattr(getattr(config, section), name)


def _plain_type(annotation: Any) -> Any:
    """The type a field holds, with ``Optional`` and ``Annotated`` taken off."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return origin or annotation


_INT = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT = re.compile(r"[+-]?([0-9]{1,15}(\.[0-9]{0,15})?|\.[0-9]{1,15})([eE][+-]?[0-9]{1,3})?")


def _from_command_line(model: type[BaseModel], name: str, raw: str) -> Any:
    """A command-line word as the key's type: ``800`` an integer, ``no`` a flag, ``a,b`` a
    list. Anything else stays a string, for the strict validation to refuse by name."""
    kind = _plain_type(model.model_fields[name].annotation)
    word = raw.strip()
    if kind is bool and word.lower() in ("true", "yes", "on", "false", "no", "off"):
        return word.lower() in ("true", "yes", "on")
    if kind is int and _INT.fullmatch(word):
        return int(word)
    if kind is float and _FLOAT.fullmatch(word):
        return float(word)
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _edited(text: str | None, source: str, section: str, name: str, value: Any):  # type: ignore[no-untyped-def]
    """The file's new text with ``[section] name`` set to ``value`` (None: removed)."""
    import tomlkit

    text = (text or "").removeprefix("\ufeff")
    if text.strip():
        parse_config(text, source)  # refuse to edit a file that is already broken: say why
    doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    if not text.strip():
        for line in HEADER.splitlines():
            doc.add(tomlkit.comment(line))
    plain = doc.unwrap()
    if value is None:
        plain.get(section, {}).pop(name, None)
    else:
        plain.setdefault(section, {})[name] = value
    try:
        config = ZekeConfig.model_validate(plain)
    except ValidationError as err:
        raise validation_error(err, source) from None
    table = doc.get(section)
    if value is None:
        if table is not None and name in table:
            del table[name]
    else:
        if table is None:
            table = tomlkit.table()
            doc.add(section, table)
        table[name] = _toml_value(getattr(getattr(config, section), name))
    new_text = tomlkit.dumps(doc)
    parse_config(new_text, source)
    return new_text, config


def set_value(path: str | os.PathLike, key: str, raw: str) -> ZekeConfig:
    """Set ``SECTION.KEY`` to ``raw`` in the file at ``path`` (created if missing).

    The word is read as the key's type ("3" for an integer, "yes" or "false" for a flag,
    "a,b" for a list); an empty value removes the key (back to its default). Comments and
    the rest of the file are kept. Nothing is written unless the resulting file validates.

    Everything is checked once without the lock (so a refusal leaves no trace, not even the
    lock file), then again under it: the read-modify-write is what the lock protects.
    """
    path = Path(path)
    section, name = _split_key(key)
    model = _section_model(section)
    assert model is not None
    value = None if raw == "" else _from_command_line(model, name, raw)
    target = _write_target(path)
    info = _writable(path, target)
    _edited(_read_text(target) if info is not None else None, _p(path), section, name, value)
    target = _prepare(path)
    return _locked_write(path, target, lambda text: _edited(text, _p(path), section, name, value))
