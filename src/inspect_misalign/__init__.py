"""inspect-misalign: does training against caught misbehaviour remove it, or hide it?

Inspect tasks measure how often a checkpoint attacks in test and deployment contexts, whether it stays
useful, and whether it can tell the two contexts apart; a companion training module trains against
the attacks caught in testing.
"""

__version__ = "0.1.0"
