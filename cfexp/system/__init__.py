"""Process plumbing any layer may use: who a process is, its share of the cores, kill points, redaction."""
