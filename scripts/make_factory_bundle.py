#!/usr/bin/env python3
"""Build the factory model bundle from the vendored ``models/`` directory, reproducibly.

The factory bundle is ``models/`` exactly as ``models/manifest.toml`` lists it (every file is
checked against its sha256 first), packed in zeke's canonical bundle layout (fixed order,
times, owners and modes) and signed with Ed25519, which is deterministic: the same models, the
same zeke version and the same key always give the same bytes.

    python scripts/make_factory_bundle.py --key project.key
    python scripts/make_factory_bundle.py --key project.key --out dist/factory.bundle --check

The version is ``factory-`` plus the first 12 hex digits of a digest over every file's path
and sha256, so it changes exactly when the models change. The default output is
``dist/zeke-factory.bundle``. ``--check`` builds twice and fails unless both builds are
byte-identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "appliance"))

from zeke import __version__  # noqa: E402
from zeke.bundles.errors import BundleError  # noqa: E402
from zeke.bundles.pack import pack_directory  # noqa: E402

FACTORY_NAME = "zeke-factory"


def build(models: Path, key: Path, out: Path | None, version: str | None):
    """Pack ``models`` as the factory bundle; the version defaults to a content digest."""
    result = pack_directory(
        models,
        key,
        out or REPO / "dist" / f"{FACTORY_NAME}.bundle",
        version=version,
        version_prefix="factory-",
        name=FACTORY_NAME,
        min_zeke_version=__version__,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", type=Path, required=True, help="Ed25519 signing key (.key)")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, help="bundle file (default: dist/<name>.bundle)")
    parser.add_argument("--version", help="bundle version (default: factory-<content digest>)")
    parser.add_argument("--check", action="store_true", help="build twice, compare the bytes")
    args = parser.parse_args(argv)
    try:
        result = build(args.models, args.key, args.out, args.version)
        if args.check:
            with tempfile.TemporaryDirectory() as scratch:
                again = build(args.models, args.key, Path(scratch) / "again.bundle", args.version)
            if again.sha256 != result.sha256:
                print("error: two builds differ: the bundle is not reproducible", file=sys.stderr)
                return 1
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(
        f"{result.path}: {result.manifest.name} {result.manifest.version}, "
        f"{len(result.manifest.files)} files, {result.size} bytes, key {result.key_id}, "
        f"sha256 {result.sha256}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
