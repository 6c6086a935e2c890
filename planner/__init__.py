"""How much paired speech to collect, and how to split a budget. Reads results tables; needs no torch."""
