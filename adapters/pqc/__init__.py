"""Post-quantum link key sources: ML-KEM key establishment between two nodes,
authenticated with ML-DSA, behind one KEM-backend interface (docs/pqc.md)."""
