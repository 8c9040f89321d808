"""Helpers of the tests (harnesses and scripts); nothing here is collected as a test."""
