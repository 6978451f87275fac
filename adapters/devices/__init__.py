"""Vendor QKD devices as link key sources (docs/devices.md).

- ``profiles``: vendor profiles by name (ID Quantique Cerberis XGR, Toshiba, generic
  ETSI 014, ETSI 004 push), each value with its public source or marked a setting;
- ``settings``: the validated config section of a device-fed link;
- ``health``: the device-health state machine with its circuit breaker;
- ``check``: the equality check of the two ends' blocks (reveals nothing of the key);
- ``replay``: refusing what a device delivers twice;
- ``paired``: what both device sources share: the master end gathers a block and
  offers it to the slave end over the KM channel, with the check;
- ``device014`` and ``pull_source``: the ETSI 014 device calls and the pull source
  (kind ``qkd-device``);
- ``status004``, ``client004`` and ``push_source``: ETSI 004 status codes, the
  push-mode client and the push source (kind ``qkd-device-004``);
- ``mock``: mock QKD devices (``qkms mock-device``) that can be told to misbehave.
"""
