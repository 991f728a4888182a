"""Assessment designs: the engine of each `design.kind`."""
