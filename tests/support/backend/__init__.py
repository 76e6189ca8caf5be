"""The in-tree PEP 517 backend that fixture sdists build with (see ``burrow_test_backend``)."""
