"""Helpers shared by every test package: free ports, service subprocesses,
private redis-server instances. Import as ``tests.helpers.<module>``."""
