"""The TOML configuration: pydantic models, where the file is, validation and atomic writes.

Where the config comes from (the first that applies wins, files are not merged):

1. ``--config PATH`` of a command, or ``$ZEKE_CONFIG`` (this file must exist when read)
2. ``$XDG_CONFIG_HOME/zeke/zeke.toml`` (``~/.config/zeke/zeke.toml``)
3. ``/etc/zeke/zeke.toml``
4. the defaults below

Everything is validated before anything starts: an unknown key is an error with a
did-you-mean hint, and every error names the file, the key and what is allowed. Writes are
atomic (temp file, fsync, rename, fsync of the directory) and keep the previous file as
``zeke.toml.bak``; a write that fails or would be invalid leaves the old file as it was.

Each ``[section]`` is its own model, so a feature adds its section by adding one field to
``ZekeConfig``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zeke.errors import ConfigError
from zeke.mesh.settings import MeshSettings, MqttSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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


class Section(BaseModel):
    """A ``[section]`` of the file: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    uri: str = Field(
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
    models_dir: Path | None = Field(
        None, description="models directory (default: the signed bundle, then the factory copy)"
    )


class EventsConfig(Section):
    socket: Path | None = Field(
        None,
        description="event socket (default /run/zeke/events.sock as root, else in "
        "$XDG_RUNTIME_DIR)",
    )


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
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe_error(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
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
    where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else loc[0]
    message = error["msg"]
    message = re.sub(r"^Value error, ", "", message)
    message = re.sub(r"^Input should be", "must be", message)
    message = re.sub(r"^String should", "must", message)
    got = error.get("input")
    shown = f", got {got!r}" if isinstance(got, (str, int, float, bool)) else ""
    return f"{where}: {message}{shown}"


def validation_error(err: ValidationError, source: str, hint: str | None = None) -> ConfigError:
    """One ``ConfigError`` listing every problem of ``err``, each with file and key."""
    problems = [_describe_error(e) for e in err.errors(include_url=False)]
    return ConfigError(
        f"{source}: " + "; ".join(problems),
        hint=hint or "fix the file, or see `zeke config show` for every key and its default",
    )


# -- reading -----------------------------------------------------------------------------


def parse_config(text: str, source: str = "config") -> ZekeConfig:
    """Validate TOML text; ``source`` names the file in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(
            f"{source}: not valid TOML: {err}",
            hint="fix the syntax there (strings need quotes, sections look like [vision])",
        ) from None
    try:
        return ZekeConfig.model_validate(doc)
    except ValidationError as err:
        raise validation_error(err, source) from None


def read_config(path: str | os.PathLike) -> ZekeConfig:
    """Read and validate one file; missing, unreadable and invalid files are ``ConfigError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file",
            hint="create it with `zeke setup`, or check the path (`zeke config path`)",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(
            f"{path}: no permission to read it", hint=f"run as a user who can, or chmod a+r {path}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (TOML must be UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror}") from None
    return parse_config(text, str(path))


def user_config_path(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "zeke" / FILE_NAME


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
        path = Path(explicit).expanduser()
        return ConfigLocation(path, "--config", [path], path)
    if env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG]).expanduser()
        return ConfigLocation(path, ENV_CONFIG, [path], path)
    user = user_config_path(env)
    searched = [user, system]
    for origin, path in (("user", user), ("system", system)):
        if path.exists():
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


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(directory: Path, name: str, data: bytes, mode: int) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_text(path: str | os.PathLike, text: str, keep_backup: bool = True) -> Path:
    """Replace ``path`` with ``text`` so that a crash leaves the old or the new file, never half.

    The previous file is kept as ``<name>.bak``. Returns the path written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o777
            exists = True
        except FileNotFoundError:
            mode, exists = 0o644, False
        tmp = _write_temp(path.parent, path.name, text.encode("utf-8"), mode)
        try:
            if keep_backup and exists:
                backup = path.with_name(path.name + ".bak")
                bak_tmp = _write_temp(path.parent, backup.name, path.read_bytes(), mode)
                os.replace(bak_tmp, backup)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    except OSError as err:
        hint = "run with sudo" if str(path).startswith("/etc/") else "check the directory"
        raise ConfigError(
            f"{path}: cannot write the config: {err.strerror or err}",
            hint=f"{hint}, or write elsewhere with --config PATH; the old file is unchanged",
        ) from None
    return path


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
        raise ConfigError(f"config key '{key}' needs its section: SECTION.KEY", hint=hint)
    model = _section_model(section)
    if model is None:
        raise ConfigError(
            f"unknown section '{section}'{_did_you_mean(section, sections)}",
            hint=f"sections: {', '.join(sections)}",
        )
    if name not in model.model_fields:
        allowed = list(model.model_fields)
        raise ConfigError(
            f"unknown key '{name}' in [{section}]{_did_you_mean(name, allowed)}",
            hint=f"keys of [{section}]: {', '.join(allowed)}",
        )
    return section, name


def get_value(config: ZekeConfig, key: str) -> Any:
    section, name = _split_key(key)
    return getattr(getattr(config, section), name)


def set_value(path: str | os.PathLike, key: str, raw: str) -> ZekeConfig:
    """Set ``SECTION.KEY`` to ``raw`` in the file at ``path`` (created if missing).

    The value is converted by the key's type ("3" for an integer, "yes" for a flag); an
    empty value removes the key (back to its default). Comments and the rest of the file
    are kept. Nothing is written unless the resulting file validates.
    """
    import tomlkit

    path = Path(path)
    section, name = _split_key(key)
    text = ""
    if path.exists():
        read_config(path)  # refuse to edit a file that is already broken: say what is wrong
        text = path.read_text(encoding="utf-8")
    doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    if not text.strip():
        for line in HEADER.splitlines():
            doc.add(tomlkit.comment(line))
    plain = doc.unwrap()
    if raw == "":
        plain.get(section, {}).pop(name, None)
    else:
        plain.setdefault(section, {})[name] = raw
    try:
        config = ZekeConfig.model_validate(plain)
    except ValidationError as err:
        raise validation_error(err, str(path)) from None
    table = doc.get(section)
    if raw == "":
        if table is not None and name in table:
            del table[name]
    else:
        if table is None:
            table = tomlkit.table()
            doc.add(section, table)
        table[name] = _toml_value(getattr(getattr(config, section), name))
    new_text = tomlkit.dumps(doc)
    parse_config(new_text, str(path))
    atomic_write_text(path, new_text)
    return config
