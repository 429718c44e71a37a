"""rarewatch: alerts on rare-earth and critical-mineral export controls."""

__version__ = "0.1.0"
