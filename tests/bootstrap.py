"""Loaded with `-p tests.bootstrap` before pytest-django reads the settings.

Tests get their own VAR_DIR (database file, storage folder, cache, secret key) so they
never touch a developer's `var/`, and a fixed test-only secret key.
"""

import os
import tempfile

os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="sales-analytics-test-"))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")
