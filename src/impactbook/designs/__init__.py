"""One module (or folder) per design kind: how its data is aggregated and analysed."""
