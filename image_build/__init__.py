"""Reproducible OS images for zeke appliances: board profiles, mmdebstrap builds, boot tests."""
