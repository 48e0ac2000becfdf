"""Signed model bundles: pack, verify, install atomically, self-test, roll back.

A bundle is one canonical tar file: ``bundle.json`` (the manifest: every file with its size and
sha256, the model specs, the bundle version and the minimum zeke version), ``bundle.sig`` (an
Ed25519 signature over the manifest) and the files themselves. Installs land in versioned
directories of a store whose ``current`` symlink names the active bundle.
"""
