"""Test certificates made at test time with ``cryptography``: no key or certificate is ever committed."""
