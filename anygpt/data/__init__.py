"""Data: procedural world generators and, later, tokenisation to shards."""
