"""Staff: the people who log in to the status page, and what they may do there."""
