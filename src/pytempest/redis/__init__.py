"""What every Redis-backed part shares: connections, URL masking, error parsing, keys."""
