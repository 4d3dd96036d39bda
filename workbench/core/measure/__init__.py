"""Measuring results: intrusive metrics, DNSMOS, evaluation tables and the phase lab."""
