"""Two-way pairs and rings (issue 11): convergence, conflicts, concurrency, a state machine."""
