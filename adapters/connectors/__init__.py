"""Application connectors: agents that fetch keys from qkms as an SAE and install them
into VPN and TLS software (WireGuard, strongSwan, TLS 1.3 PSK, files). See
docs/connectors.md for the agent pair's protocol and its failure behaviour."""
