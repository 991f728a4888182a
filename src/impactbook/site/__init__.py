"""The report site: `impactbook site` builds it (build.py) from the run index, run folders and ledger, with
pages (pages.py), trend plots (plots.py) and run folders' file states (filestates.py), the last two taken by
helper processes (helpers.py) where a second core allows; what a build rendered is kept in its folder
(manifest.py)."""
