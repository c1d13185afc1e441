"""How compute is obtained: an embedded local Ray by default, or joining a cluster by address."""
