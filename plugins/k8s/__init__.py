"""Makes ``k8s.tests`` a unique package name for pytest (the plugins' test
files share basenames such as ``test_contract.py``)."""
