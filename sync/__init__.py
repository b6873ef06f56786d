"""Match the two systems' canonical records, and keep the findings' history across runs."""
