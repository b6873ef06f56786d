"""What every layer shares: typed errors, configuration, time-zone handling."""
