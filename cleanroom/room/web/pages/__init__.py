"""One module per page of the web UI; each module's routes stay thin."""
