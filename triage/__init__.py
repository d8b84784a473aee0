"""Lateral-movement triage for Microsoft Sentinel incidents. The pipeline is in pipeline.py."""
