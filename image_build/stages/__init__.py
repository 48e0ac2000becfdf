"""The build's stages, in order; each takes the shared ``BuildContext``."""
