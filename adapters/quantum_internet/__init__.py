"""Key sources beyond trusted-node QKD: entanglement-based links (BBM92 with CHSH
monitoring), quantum repeater chains with memories, and satellite downlinks.

One idea per module: :mod:`bbm92_model` (closed form, Ma, Fung, Lo 2007),
:mod:`bbm92_sampling` (Monte Carlo), :mod:`bbm92` (a run from pulses to two keys),
:mod:`bell_diagonal` (two-qubit states under swapping, memory dephasing, purification),
:mod:`repeater` (a chain over time), :mod:`satellite` (pass geometry and loss),
:mod:`sources` (the three as :class:`kms.sources.KeySource`).
"""
