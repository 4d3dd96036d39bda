"""Measuring results: intrusive and non-intrusive metrics, DNSMOS."""
