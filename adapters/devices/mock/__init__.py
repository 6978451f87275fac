"""Mock QKD devices for tests and demos (``qkms mock-device``, docs/devices.md).

One pair per link, each a separate HTTPS process with mutual TLS, each running one end
of the simulated link engine (``adapters.qkd_sim``) from a shared seed, so key rate and
QBER are physical. A device is an ETSI GS QKD 014 KME served by the node's own ETSI
blueprint (``etsi_api.keys_api``: the same parsing, answers and errors as a node) and
an ETSI 004 push-mode device (AIT API); it can be told to misbehave (``faults``).

- ``faults``: what a device can be told to do wrong, at start and at run time;
- ``config``: its configuration file;
- ``kme``: the device's key management: pools and reservations (the node's in-memory
  stores), its SAEs, the peer device it reserves keys at;
- ``qkd004``: key streams and pushing (ETSI 004 push mode);
- ``app``: the Flask apps (device and control);
- ``server``: TLS servers, the simulation feed, the process.
"""
