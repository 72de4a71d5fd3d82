"""Concurrent programs (litmus tests) and the memory models they run under."""
