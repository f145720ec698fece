"""Tasks: the embedded arithmetic task and the math benchmark loaders."""
