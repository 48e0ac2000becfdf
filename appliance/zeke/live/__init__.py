"""The live loop behind ``zeke watch``: capture, vision, tracking, sinks, statistics."""
